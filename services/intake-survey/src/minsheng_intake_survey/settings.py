"""Settings of intake-survey (env prefix MINSHENG_SURVEY_)."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_core.paths import VAR_DIR
from minsheng_core.settings import IntakeSettings
from minsheng_core.units import DEFAULT_UNITS_FILE


class SurveySettings(IntakeSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_SURVEY_", extra="ignore", frozen=True)

    secret_key: SecretStr = SecretStr("dev-only-survey-secret-change-me")
    outbox_path: Path = VAR_DIR / "intake-survey" / "outbox.sqlite3"
    units_file: Path = DEFAULT_UNITS_FILE
    max_body_bytes: int = 5 * 1024 * 1024  # a unit's survey sheet: thousands of households
    cookie_secure: bool = False  # True behind HTTPS (production)
