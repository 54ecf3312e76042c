#!/usr/bin/env bash
# Make this checkout ready to run: system packages the tests and the demo need, the Python
# venv in .venv, and the Node packages of the interop and browser tests. Idempotent and quick when
# nothing changed, so `make demo|test|bench` can call it every time.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { echo "bootstrap: $*"; }
die() { echo "bootstrap: $*" >&2; exit 1; }

# --- Debian packages -----------------------------------------------------------------------

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  fi
fi

have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# package -> how we know it is there (a command can come from elsewhere, e.g. Node.js)
missing_packages() {
  have_pg_server || echo postgresql
  have_cmd redis-server || echo redis-server
  have_cmd slapd || echo slapd
  have_cmd ldapsearch || echo ldap-utils
  have_cmd softhsm2-util || have_deb softhsm2 || echo softhsm2
  have_cmd chromium || echo chromium
  have_cmd chromedriver || echo chromium-driver
  have_cmd node || echo nodejs
  have_cmd npm || echo npm
  have_cmd nginx || echo nginx
}

install_system_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -gt 0 ] || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    die "missing ${missing[*]}: run as root or with sudo available"
  fi
  say "installing Debian packages: ${missing[*]}"
  # slapd asks for an admin password and a domain; the tests run their own slapd with their
  # own configuration, so tell it not to configure the system one.
  printf '%s\n' 'slapd slapd/no_configuration boolean true' | "${SUDO[@]}" debconf-set-selections 2>/dev/null || true
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
}

install_system_packages

# --- Python venv ---------------------------------------------------------------------------

PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"
STAMP="$VENV/.nixa-bootstrap"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating .venv"
  "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"
fi

# Reinstall only when pyproject.toml changed since the last successful install.
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
HAVE=$(cat "$STAMP" 2>/dev/null || true)
if [ "$WANT" != "$HAVE" ]; then
  say "installing the project into .venv (pip install -e '.[test]')"
  # A machine's pip config may list local index folders that do not exist; pip warns about
  # each one on every package. Drop just those lines, keep every other message.
  { "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1; } \
    | { grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" || true; }
  echo "$WANT" >"$STAMP"
fi

# --- Node packages -------------------------------------------------------------------------

npm_install() {
  local dir=$1
  [ -f "$dir/package.json" ] || return 0
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package.json" -nt "$dir/node_modules" ] \
    || { [ -f "$dir/package-lock.json" ] && [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; }; then
    say "npm install in $dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$dir/node_modules"
  fi
}

npm_install tests/interop/node
npm_install examples/node-openid-client
npm_install connectors/oidc/sandbox
npm_install tests/browser/axe
npm_install bench/reference  # the benchmark's node-oidc-provider, which tests/bench starts
