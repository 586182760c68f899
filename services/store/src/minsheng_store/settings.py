"""Settings of the store (env prefix MINSHENG_STORE_)."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_core.settings import ServiceSettings
from minsheng_core.units import DEFAULT_UNITS_FILE


class StoreSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_STORE_", extra="ignore", frozen=True)

    queue: str = "minsheng.store"
    prefetch: int = 64
    tally_fold_seconds: float = 1.0  # how often recorded tally moves are added into the day documents
    units_file: Path = DEFAULT_UNITS_FILE
    secret_key: SecretStr = SecretStr("dev-only-store-secret-change-me")  # CSRF tokens of the staff pages
    cookie_secure: bool = False  # True behind HTTPS (production)
