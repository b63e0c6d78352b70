# Sourced by scripts/test (after _postgres.sh): the dashboard's browser tests drive Debian's
# headless Chromium through Playwright (never `playwright install`: no browser is downloaded).
# As root with apt-get (CI, a fresh container) it installs the package when missing; otherwise
# it says what to do, and the browser tests fail saying so too (they never skip).
GLAM_CHROMIUM="${GLAM_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$GLAM_CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "glam: installing Chromium (Debian package) for the dashboard's browser tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
  else
    echo "glam: $GLAM_CHROMIUM is missing and this is not root: the dashboard's browser" \
      "tests will fail; install it (apt-get install chromium) or set GLAM_CHROMIUM" >&2
  fi
fi
export GLAM_CHROMIUM
