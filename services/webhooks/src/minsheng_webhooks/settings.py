"""Settings of the webhook relay (env prefix MINSHENG_WEBHOOKS_)."""

from pydantic_settings import SettingsConfigDict

from minsheng_core.settings import ServiceSettings


class WebhookSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_WEBHOOKS_", extra="ignore", frozen=True)

    queue: str = "minsheng.webhooks"
    prefetch: int = 32
    request_timeout_seconds: float = 10.0  # one POST to a subscriber, connect to last byte of the headers
    retry_base_seconds: float = 10.0  # first retry after 5–10 s, then doubling…
    retry_cap_seconds: float = 600.0  # …up to 5–10 min between attempts
    give_up_after_hours: float = 24.0  # then the delivery is `failed` until an administrator replays it
    dispatch_interval_seconds: float = 1.0  # how often the dispatcher looks for due deliveries
    max_parallel_subscriptions: int = 16  # subscriptions served at once (each one in order, one request at a time)
    lease_seconds: float = 120.0  # a dispatcher's claim on a subscription, so that two replicas never send in parallel
    # Subscriber URLs whose host is a private, loopback or link-local address: refused in production unless set true.
    allow_private_targets: bool | None = None
    outbound_proxy: str | None = None  # e.g. http://proxy.internal:3128; environment proxy variables are ignored

    @property
    def private_targets_allowed(self) -> bool:
        return self.allow_private_targets if self.allow_private_targets is not None else self.environment != "production"
