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

# The operators' console is tested in a real browser: Debian's chromium, driven by Playwright.
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  echo "[setup] installing chromium from Debian's packages (browser tests)"
  local root=()
  [ "$(id -u)" -eq 0 ] || root=(sudo)
  "${root[@]}" apt-get update -qq
  "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}
