# Sourced by scripts/test (and the benchmarks): make sure PostgreSQL's server binaries are here,
# for the tests that run a real server. As root with apt-get (CI, a fresh container) it installs
# Debian's packages when missing; otherwise it says what to do. GLAM_SKIP_POSTGRES=1 skips the
# install and the PostgreSQL tests (loudly; CI ignores it).
glam_pg_bindir() {
  local dir
  for dir in ${GLAM_PG_BINDIR:-} $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}
if [ "${GLAM_SKIP_POSTGRES:-}" = 1 ] && [ "${CI:-}" != true ]; then
  echo "glam: !!! GLAM_SKIP_POSTGRES=1: the PostgreSQL tests will NOT run" >&2
elif ! glam_pg_bindir >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "glam: installing PostgreSQL (Debian packages) for the tests that need a real server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "glam: PostgreSQL is not installed and this is not root: the PostgreSQL tests will" \
      "fail; install it (apt-get install postgresql) or set GLAM_SKIP_POSTGRES=1" >&2
  fi
fi
if glam_pg_bindir >/dev/null; then export GLAM_PG_BINDIR="$(glam_pg_bindir)"; fi
