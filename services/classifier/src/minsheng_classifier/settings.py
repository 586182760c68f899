"""Settings of the classifier (env prefix MINSHENG_CLASSIFIER_)."""

from pathlib import Path

from minsheng_core.paths import VAR_DIR
from minsheng_core.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from minsheng_classifier.corpus import CAMPAIGN_CORPUS

DEFAULT_MODEL_DIR = VAR_DIR / "models" / "campaign"


class ClassifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_CLASSIFIER_", extra="ignore", frozen=True)

    model_dir: Path = DEFAULT_MODEL_DIR
    corpus_dir: Path = CAMPAIGN_CORPUS
    review_threshold: float = Field(default=0.6, ge=0.0, le=1.0, description="needs_review below this confidence")
    queue: str = "minsheng.classifier"
    prefetch: int = 32
