"""Settings of intake-web (env prefix MINSHENG_WEB_)."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_core.paths import VAR_DIR
from minsheng_core.settings import IntakeSettings


class WebSettings(IntakeSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_WEB_", extra="ignore", frozen=True)

    secret_key: SecretStr = SecretStr("dev-only-web-secret-change-me")
    outbox_path: Path = VAR_DIR / "intake-web" / "outbox.sqlite3"
    max_body_bytes: int = 64 * 1024
    # Per client address; "10/minute" style (see the limits package). Behind our reverse proxy, trust its header.
    submissions_rate: str = "10/minute"
    lookups_rate: str = "30/minute"
    trust_forwarded_for: bool = False
