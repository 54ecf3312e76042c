#!/usr/bin/env bash
# Run the whole test suite twice, as DESIGN.md asks ("both columns run the same test suite"):
#   1. embedded:  SQLite + in-process ephemeral store (no NIXA_TEST_* variables)
#   2. scale-out: throwaway PostgreSQL + Redis from scripts/services.sh
# Extra arguments go to pytest. Exits non-zero if either run fails or runs no test.
set -euo pipefail

cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

PY=.venv/bin/python
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nixa-test.XXXXXX")
SERVICES="$WORK/services"

cleanup() {
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null || true  # a suite still running (interrupted): stop it first
  bash scripts/services.sh stop "$SERVICES" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Nothing from the caller's environment decides which backends the embedded run uses.
for var in $(compgen -v NIXA_TEST_ || true); do
  unset "$var"
done

# Counts from pytest's JUnit XML: "passed failed skipped" (errors count as failed).
junit_counts() {
  "$PY" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 0, 0)
    raise SystemExit
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = failed = skipped = 0
for suite in suites:
    total += int(suite.get("tests", 0))
    failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped += int(suite.get("skipped", 0))
print(total - failed - skipped, failed, skipped)
EOF
}

declare -A PASSED FAILED SKIPPED STATUS RC PID

# start_suite NAME [pytest args...]: pytest in the background, its output in $WORK/NAME.log.
start_suite() {
  local name=$1
  shift
  mkdir -p "$WORK/$name-tmp"
  ( "$PY" -m pytest -p no:cacheprovider -q --junitxml="$WORK/$name.xml" --basetemp="$WORK/$name-tmp" "$@" \
      >"$WORK/$name.log" 2>&1; echo $? >"$WORK/$name.rc" ) &
  PID[$name]=$!
}

# finish_suite NAME LABEL: wait for it, print its output, count what passed.
finish_suite() {
  local name=$1 label=$2 rc
  wait "${PID[$name]}" || true
  rc=$(cat "$WORK/$name.rc" 2>/dev/null || echo 1)
  echo
  echo "=================================================================="
  echo "  $label"
  echo "=================================================================="
  cat "$WORK/$name.log"
  read -r PASSED[$name] FAILED[$name] SKIPPED[$name] < <(junit_counts "$WORK/$name.xml")
  if [ "$rc" -eq 0 ] && [ "${PASSED[$name]}" -gt 0 ]; then
    STATUS[$name]=ok
  elif [ "$rc" -eq 5 ] || [ "$((PASSED[$name] + FAILED[$name] + SKIPPED[$name]))" -eq 0 ]; then
    STATUS[$name]="FAILED (no tests ran, pytest exit $rc)"
  else
    STATUS[$name]="FAILED (pytest exit $rc)"
  fi
}

EMBEDDED_LABEL="embedded (SQLite + in-process)"
SCALEOUT_LABEL="scale-out (PostgreSQL + Redis)"

# The two runs are independent (their own stores, temporary folders and free ports): on a
# machine with two cores or more they run side by side, each printed whole when it ends.
# NIXA_TEST_SERIAL=1 runs them one after the other.
CORES=$("$PY" -c 'import os; print(len(os.sched_getaffinity(0)))')
PARALLEL=1
if [ "${NIXA_TEST_SERIAL:-0}" = 1 ] || [ "$CORES" -lt 2 ]; then
  PARALLEL=0
fi

echo "starting PostgreSQL and Redis for the scale-out run..."
SERVICES_OK=0
if bash scripts/services.sh start "$SERVICES" >/dev/null; then
  SERVICES_OK=1
  echo "  database: $(grep NIXA_TEST_DATABASE_URL "$SERVICES/env" | cut -d= -f2-)"
  echo "  redis:    $(grep NIXA_TEST_REDIS_URL "$SERVICES/env" | cut -d= -f2-)"
fi

start_scaleout() {
  set -a
  # shellcheck disable=SC1091
  . "$SERVICES/env"
  set +a
  start_suite scaleout "$@"
}

if [ "$PARALLEL" = 1 ]; then
  echo "running both suites side by side ($CORES cores); each one's output follows when it ends"
  start_suite embedded "$@"
  if [ "$SERVICES_OK" = 1 ]; then
    ( start_scaleout "$@"; wait ) &
    PID[scaleout]=$!
  fi
  finish_suite embedded "run 1/2: $EMBEDDED_LABEL"
else
  start_suite embedded "$@"
  finish_suite embedded "run 1/2: $EMBEDDED_LABEL"
  if [ "$SERVICES_OK" = 1 ]; then
    ( start_scaleout "$@"; wait ) &
    PID[scaleout]=$!
  fi
fi
if [ "$SERVICES_OK" = 1 ]; then
  finish_suite scaleout "run 2/2: $SCALEOUT_LABEL"
  bash scripts/services.sh stop "$SERVICES" >/dev/null 2>&1 || true
else
  PASSED[scaleout]=0 FAILED[scaleout]=0 SKIPPED[scaleout]=0
  STATUS[scaleout]="FAILED (services did not start)"
fi

line() {
  local name=$1 label=$2 text
  text="${PASSED[$name]} passed"
  [ "${FAILED[$name]}" -eq 0 ] || text+=", ${FAILED[$name]} failed"
  [ "${SKIPPED[$name]}" -eq 0 ] || text+=", ${SKIPPED[$name]} skipped"
  [ "${STATUS[$name]}" = ok ] || text+="  <-- ${STATUS[$name]}"
  printf '%-32s %s\n' "$label:" "$text"
}

TOTAL_PASSED=$((PASSED[embedded] + PASSED[scaleout]))
TOTAL_FAILED=$((FAILED[embedded] + FAILED[scaleout]))
TOTAL_SKIPPED=$((SKIPPED[embedded] + SKIPPED[scaleout]))

echo
echo "=================================================================="
echo "  summary"
echo "=================================================================="
line embedded "$EMBEDDED_LABEL"
line scaleout "$SCALEOUT_LABEL"
if [ "$TOTAL_SKIPPED" -gt 0 ]; then
  echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
else
  echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
fi

[ "${STATUS[embedded]}" = ok ] && [ "${STATUS[scaleout]}" = ok ]
