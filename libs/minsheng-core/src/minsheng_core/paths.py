"""Where the repository's shared files live, for editable installs and the container image alike."""

from pathlib import Path

# libs/minsheng-core/src/minsheng_core/paths.py → repository root
REPO_ROOT = Path(__file__).resolve().parents[4]
VAR_DIR = REPO_ROOT / "var"
