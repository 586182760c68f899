"""Settings of the notifier (env prefix MINSHENG_NOTIFIER_)."""

from datetime import time
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_core.events import Channel
from minsheng_core.paths import REPO_ROOT
from minsheng_core.settings import ServiceSettings

DEFAULT_ACCOUNTS_FILE = REPO_ROOT / "config" / "wechat" / "accounts.yaml"


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_NOTIFIER_", extra="ignore", frozen=True)

    queue: str = "minsheng.notifier"
    prefetch: int = 32
    # Where residents read the decision in full; messages point there with the tracking code.
    status_page_url: str = "http://127.0.0.1:8000/status"
    # WeChat: the Official Accounts (AppSecret for the message API, optional decision_template_id) and the API.
    wechat_accounts_file: Path = DEFAULT_ACCOUNTS_FILE
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_timeout_seconds: float = Field(default=5.0, gt=0)
    wechat_text_max_chars: int = Field(default=600, ge=50, le=680, description="customer-service text: 2048 bytes at most")
    # Twilio SMS: no sender number configured means no SMS (the status page still shows the decision).
    twilio_account_sid: SecretStr = SecretStr("ACdevonly00000000000000000000000")
    twilio_auth_token: SecretStr = SecretStr("dev-only-twilio-auth-token")
    twilio_api_base: str | None = None  # a stand-in for https://api.twilio.com (tests); None: Twilio itself
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)
    sms_from: str | None = None
    sms_signature: str = Field(default="民心工程", max_length=12, description="the 【…】 signature Chinese carriers require")
    sms_max_chars: int = Field(default=134, ge=70, le=1600, description="134: two UCS-2 segments")
    sms_channels: tuple[Channel, ...] = (Channel.HOTLINE, Channel.HOTLINE_TRANSCRIPT, Channel.WEB, Channel.DOOR_TO_DOOR)
    # Quiet hours in the campaign's time zone: nothing is sent from start to end (start == end: no quiet hours).
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    # Delivery: attempts before giving up, exponential backoff with jitter between them.
    max_attempts: int = Field(default=5, ge=1, le=50)
    retry_base_seconds: float = Field(default=30.0, ge=0)
    retry_max_seconds: float = Field(default=3600.0, ge=0)
    # A decision that arrives before its suggestion waits this long for the contact, then counts as web-only.
    contact_wait_seconds: float = Field(default=600.0, ge=0)
    # A record still "sending" after this long was interrupted (crash, kill): its outcome is unknown, never resent by itself.
    stale_sending_seconds: float = Field(default=300.0, gt=0)
    dispatch_interval_seconds: float = Field(default=2.0, gt=0)
    dispatch_batch: int = Field(default=50, ge=1, le=500)
    dispatch_concurrency: int = Field(default=4, ge=1, le=32)
    erasure_interval_seconds: float = Field(default=10.0, gt=0, description="how often to look for erased personal data")
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, description="how long in-flight sends may finish at shutdown")
