"""Settings of intake-wechat (env prefix MINSHENG_WECHAT_)."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_core.paths import REPO_ROOT, VAR_DIR
from minsheng_core.settings import IntakeSettings
from minsheng_core.units import DEFAULT_UNITS_FILE


class WechatSettings(IntakeSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_WECHAT_", extra="ignore", frozen=True)

    secret_key: SecretStr = SecretStr("dev-only-wechat-secret-change-me")
    accounts_file: Path = REPO_ROOT / "config" / "wechat" / "accounts.yaml"
    units_file: Path = DEFAULT_UNITS_FILE
    outbox_path: Path = VAR_DIR / "intake-wechat" / "outbox.sqlite3"
    # WeChat waits 5 s for a reply, then retries: publishing may take this long, the outbox covers the rest.
    publish_timeout_seconds: float = 1.0
    lookup_timeout_seconds: float = 1.5
    timestamp_tolerance_seconds: int = 300
    attach_window_minutes: int = 10
    max_body_bytes: int = 32 * 1024
