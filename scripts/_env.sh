# Shared by scripts/test, scripts/demo and scripts/bench: make .venv from uv.lock, exactly.
# Sourced, not run. A fresh machine needs only python3.11 (or newer) and network to PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python; never fetch an interpreter
export UV_LINK_MODE=copy
# Trust the machine's certificate store (where a company or sandbox CA lives), as pip and git
# do; uv's built-in roots alone fail behind a TLS-inspecting proxy.
export UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}" UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}"
PY="${GLAM_PYTHON:-$(command -v python3.11 || command -v python3)}"
# The interpreter itself, not a launcher (a pyenv shim): uv compares this path with the one
# .venv was made from, and a different path makes it replace the whole .venv, under any test
# or engine running from it at that moment.
PY="$("$PY" -c 'import sys; print(sys.executable)')"
if ! command -v uv >/dev/null 2>&1 && [ ! -x "$ROOT/.venv-tools/bin/uv" ]; then
  echo "glam: installing uv (the lockfile installer) into .venv-tools" >&2
  "$PY" -m venv "$ROOT/.venv-tools"
  "$ROOT/.venv-tools/bin/pip" install --quiet "uv==0.13.8"
fi
UV="$(command -v uv || echo "$ROOT/.venv-tools/bin/uv")"
# --frozen: install what uv.lock says, never re-resolve. --all-extras: the embedded AWS and dev tools.
"$UV" sync --frozen --all-extras --python "$PY" --quiet
export PATH="$ROOT/.venv/bin:$PATH"
