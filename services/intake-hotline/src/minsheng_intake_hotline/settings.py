"""Settings of intake-hotline (env prefix MINSHENG_HOTLINE_)."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_core.paths import VAR_DIR
from minsheng_core.settings import IntakeSettings
from minsheng_core.units import DEFAULT_UNITS_FILE


class HotlineSettings(IntakeSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_HOTLINE_", extra="ignore", frozen=True)

    secret_key: SecretStr = SecretStr("dev-only-hotline-secret-change-me")
    outbox_path: Path = VAR_DIR / "intake-hotline" / "outbox.sqlite3"
    units_file: Path = DEFAULT_UNITS_FILE
    max_body_bytes: int = 256 * 1024  # a transcript batch; Twilio's callbacks are a few KiB
    # Twilio: the public URL Twilio calls (behind a proxy the request URL differs: signatures are over this one).
    public_url: str = "http://127.0.0.1:8004"
    twilio_account_sid: str = "ACdevonly00000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("dev-only-twilio-auth-token")
    twilio_api_base: str | None = None  # a stand-in for https://api.twilio.com (tests); None: Twilio itself
    say_voice: str = "Polly.Zhiyu"
    say_language: str = "cmn-CN"
    speech_language: str = "cmn-Hans-CN"
    min_speech_confidence: float = 0.5
    sms_receipts: bool = False
    sms_from: str | None = None
    # Operators: their entries stay editable this long before they are published.
    edit_window_minutes: int = 10
    classifier_url: str = "http://127.0.0.1:8001"
    classifier_timeout_seconds: float = 0.8
    cookie_secure: bool = False  # True behind HTTPS (production)
    # The call centre's system posts transcript batches with this bearer token.
    transcripts_token: SecretStr = SecretStr("dev-only-transcripts-token")
