"""Settings of the store (env prefix MINSHENG_STORE_)."""

from minsheng_core.settings import ServiceSettings
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict


class StoreSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_STORE_", extra="ignore", frozen=True)

    api_token: SecretStr = SecretStr("dev-only-staff-token")
    queue: str = "minsheng.store"
    prefetch: int = 64
