# Shared by the project's scripts: paths and the Python tool chain.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.9"

ensure_uv() {
  if ! command -v uv >/dev/null 2>&1; then
    echo "[setup] installing uv $UV_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  (cd "$ROOT" && uv sync --frozen --quiet)
}

ensure_model() {
  (cd "$ROOT" && uv run --frozen minsheng-classify ship)
}
