"""Settings shared by every service; each service subclasses them with its own env prefix."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng_core.campaign import DEFAULT_CAMPAIGN_FILE, Campaign, load_campaign
from minsheng_core.paths import REPO_ROOT
from minsheng_core.personal import DEV_KEYS, DEV_LOOKUP_KEY, PersonalDataVault

DEFAULT_TOPOLOGY_FILE = REPO_ROOT / "deploy" / "rabbitmq" / "definitions.json"
_PLACEHOLDER_PREFIX = "dev-only-"


class ServiceSettings(BaseSettings):
    """Connections, campaign and logging: what every service needs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    environment: Literal["development", "test", "production"] = "development"
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    mongo_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    mongo_database: str = "minsheng"
    topology_file: Path = DEFAULT_TOPOLOGY_FILE
    campaign_file: Path = DEFAULT_CAMPAIGN_FILE
    campaign_opens_on: date | None = None
    campaign_closes_on: date | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    # Personal data at rest (minsheng_core.personal): key ring "id:base64url,…" (current key first) and look-up key.
    personal_data_keys: SecretStr = SecretStr(DEV_KEYS)
    personal_lookup_key: SecretStr = SecretStr(DEV_LOOKUP_KEY)

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> ServiceSettings:
        if self.environment == "production":
            for name, value in self:
                if isinstance(value, SecretStr) and value.get_secret_value().startswith(_PLACEHOLDER_PREFIX):
                    raise ValueError(f"{name} still holds the development placeholder; set a real secret")
        return self

    @property
    def vault(self) -> PersonalDataVault:
        """Seals and opens personal data with the configured keys."""
        return PersonalDataVault.from_secrets(self.personal_data_keys, self.personal_lookup_key)

    @property
    def campaign(self) -> Campaign:
        """The campaign file, validated, with the window overrides applied (read on each access)."""
        return load_campaign(self.campaign_file, self.campaign_opens_on, self.campaign_closes_on)


class IntakeSettings(ServiceSettings):
    """What an intake service adds: its outbox, how long a channel answer may wait for the broker, its secret."""

    secret_key: SecretStr = SecretStr("dev-only-intake-secret-change-me")
    outbox_path: Path
    publish_timeout_seconds: float = 3.0
    drain_interval_seconds: float = 2.0
