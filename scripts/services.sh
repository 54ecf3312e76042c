#!/usr/bin/env bash
# Throwaway PostgreSQL + Redis for the scale-out test run.
#
#   scripts/services.sh start DIR   start both on free loopback ports, data under DIR,
#                                   write DIR/env (NIXA_TEST_DATABASE_URL, NIXA_TEST_REDIS_URL)
#   scripts/services.sh stop DIR    stop both (safe to call twice, or when never started)
#   scripts/services.sh env DIR     print DIR/env
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` system user.
# Tuned for tests only (no fsync): never point this at data you want to keep. Redis keeps an
# append-only file, as a deployment does, so the fault tests can restart it without losing sessions.
set -euo pipefail

WAIT_SECONDS=${NIXA_SERVICES_WAIT:-30}

die() { echo "services.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|env DIR"; }

[ $# -eq 2 ] || usage
ACTION=$1
DIR=$2

free_port() {
  # Bind port 0 on loopback and report what the kernel chose. A small race remains until the
  # server binds it; start_* retries with a new port if the server fails to come up.
  local py
  py=$(command -v python3 || command -v python) || die "python3 is needed to find a free port"
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_bindir() {
  local dir best=""
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/postgres" ] || continue
    if [ -z "$best" ] || [ "$(basename "$(dirname "$dir")")" -gt "$(basename "$(dirname "$best")")" ]; then
      best=$dir
    fi
  done
  [ -n "$best" ] || die "no PostgreSQL server under /usr/lib/postgresql/*/bin (run scripts/bootstrap.sh)"
  echo "$best"
}

# Commands that touch the cluster run as PG_USER when we are root.
PG_USER=""
as_pg() {
  if [ -n "$PG_USER" ]; then
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

pick_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user (run scripts/bootstrap.sh)"
    PG_USER=postgres
  fi
}

# Where the cluster lives: DIR/pg, unless the cluster's user cannot reach DIR (a root-only
# mktemp directory under /root, say); then a private directory of its own under $TMPDIR.
pg_data_dir() {
  if [ -f "$DIR/pgdata" ]; then
    cat "$DIR/pgdata"
    return
  fi
  local data="$DIR/pg"
  if [ -n "$PG_USER" ]; then
    chmod a+x "$DIR" 2>/dev/null || true
    if ! runuser -u "$PG_USER" -- test -x "$DIR"; then
      data=$(mktemp -d "${TMPDIR:-/tmp}/nixa-pg.XXXXXX")
      chmod 755 "$data"
      data="$data/pg"
    fi
  fi
  echo "$data" >"$DIR/pgdata"
  echo "$data"
}

start_postgres() {
  local bin data port attempt
  bin=$(pg_bindir)
  pick_pg_user
  data=$(pg_data_dir)
  rm -rf "$data"
  mkdir -p "$data"
  [ -z "$PG_USER" ] || chown "$PG_USER" "$data"
  chmod 700 "$data"
  as_pg "$bin/initdb" -D "$data" -U nixa --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/pg-initdb.log" 2>&1 \
    || { cat "$DIR/pg-initdb.log" >&2; die "initdb failed"; }
  for attempt in 1 2 3; do
    port=$(free_port)
    # The last setting wins, so appending overrides initdb's defaults.
    as_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF

# nixa test cluster (scripts/services.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
    if as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t "$WAIT_SECONDS" start >/dev/null 2>&1 \
      && wait_postgres "$bin" "$port"; then
      as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U nixa nixa \
        || die "createdb nixa failed (log: $data/server.log)"
      echo "$port" >"$DIR/pg.port"
      PG_PORT=$port
      return 0
    fi
    as_pg "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    echo "services.sh: PostgreSQL did not start on port $port (attempt $attempt)" >&2
  done
  tail -n 20 "$data/server.log" >&2 2>/dev/null || true
  die "PostgreSQL did not start; log: $data/server.log"
}

wait_postgres() {
  local bin=$1 port=$2 i
  for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U nixa; then
      return 0
    fi
    sleep 0.1
  done
  echo "services.sh: PostgreSQL not accepting connections on 127.0.0.1:$port after ${WAIT_SECONDS}s" >&2
  return 1
}

redis_ping() {
  # redis-cli when present; otherwise a raw PING over bash's /dev/tcp.
  local port=$1 reply
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]
    return
  fi
  exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 1 reply <&3 || true
  exec 3<&- 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

start_redis() {
  local port attempt i
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run scripts/bootstrap.sh)"
  mkdir -p "$DIR/redis"
  for attempt in 1 2 3; do
    port=$(free_port)
    rm -f "$DIR/redis.pid"
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly yes --appendfsync everysec \
      --dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis.pid" \
      --logfile "$DIR/redis.log" >/dev/null
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
      if redis_ping "$port"; then
        echo "$port" >"$DIR/redis.port"
        REDIS_PORT=$port
        return 0
      fi
      # Gave up early: the server exited (port taken in the meantime, say).
      if [ -f "$DIR/redis.pid" ] && ! kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
        break
      fi
      sleep 0.1
    done
    stop_redis
    echo "services.sh: Redis did not start on port $port (attempt $attempt)" >&2
  done
  tail -n 20 "$DIR/redis.log" >&2 2>/dev/null || true
  die "Redis not accepting connections; log: $DIR/redis.log"
}

stop_postgres() {
  [ -f "$DIR/pgdata" ] || return 0
  local data bin
  data=$(cat "$DIR/pgdata")
  if [ -f "$data/postmaster.pid" ]; then
    bin=$(pg_bindir)
    pick_pg_user
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t "$WAIT_SECONDS" stop >/dev/null 2>&1 \
      || as_pg "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  # A cluster placed outside DIR (see pg_data_dir) is ours to remove.
  case "$data" in
    "$DIR"/*) ;;
    *) rm -rf "$(dirname "$data")" ;;
  esac
  rm -f "$DIR/pgdata" "$DIR/pg.port"
}

stop_redis() {
  [ -f "$DIR/redis.pid" ] || return 0
  local pid i
  pid=$(cat "$DIR/redis.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/redis.pid" "$DIR/redis.port"
}

case "$ACTION" in
  start)
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # A previous start in the same DIR is stopped first, so start is repeatable.
    stop_redis
    stop_postgres
    # Half a start leaves nothing running behind.
    trap 'rc=$?; if [ $rc -ne 0 ]; then stop_redis; stop_postgres; fi' EXIT
    start_postgres
    start_redis
    cat >"$DIR/env" <<EOF
NIXA_TEST_DATABASE_URL=postgresql+psycopg://nixa@127.0.0.1:$PG_PORT/nixa
NIXA_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
EOF
    cat "$DIR/env"
    ;;
  stop)
    [ -d "$DIR" ] || exit 0
    DIR=$(cd "$DIR" && pwd)
    stop_redis
    stop_postgres
    ;;
  env)
    [ -f "$DIR/env" ] || die "no $DIR/env: run '$0 start $DIR' first"
    cat "$DIR/env"
    ;;
  *)
    usage
    ;;
esac
