"""Settings of the classifier (env prefix MINSHENG_CLASSIFIER_)."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from minsheng_classifier.corpus import CAMPAIGN_CORPUS
from minsheng_core.paths import VAR_DIR
from minsheng_core.settings import ServiceSettings
from minsheng_core.units import DEFAULT_UNITS_FILE

DEFAULT_MODEL_DIR = VAR_DIR / "models" / "campaign"


class ClassifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_CLASSIFIER_", extra="ignore", frozen=True)

    model_dir: Path = DEFAULT_MODEL_DIR
    model_reload_seconds: float = Field(default=10.0, gt=0, description="how often to look for a new model version")
    units_file: Path = DEFAULT_UNITS_FILE
    corpus_dir: Path = Field(default=CAMPAIGN_CORPUS, description="campaign corpus: word weights for similarity")
    review_threshold: float = Field(default=0.6, ge=0.0, le=1.0, description="needs_review below this confidence")
    person_key_secret: SecretStr = SecretStr("dev-only-person-key")
    queue: str = "minsheng.classifier"
    prefetch: int = 32
