#!/usr/bin/env bash
# A real PostgreSQL server on 127.0.0.1, for the tests: jobs/testbed/README.md.
#   postgres.sh start DIR    initdb DIR/data as user postgres, starts the server on a free port (socket in DIR), creates
#                            the database repro_test, then prints on stdout
#                            TESTBED_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/repro_test
#   postgres.sh stop DIR     stops that server (and anything else it started from DIR)
#   postgres.sh status DIR   pg_ctl status
# Needs root (to become user postgres) and Debian's postgresql (jobs/testbed/install.sh). The server trusts every local
# connection and runs without fsync: it is for tests only. Exit code 77: this machine cannot run it (reason on stderr).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=jobs/testbed/lib.sh
. "$HERE/lib.sh"

usage() { die "usage: $0 start|stop|status DIR"; }
[ $# -eq 2 ] || usage
DB=${TESTBED_POSTGRES_DB:-repro_test}
START_TIMEOUT=${TESTBED_POSTGRES_TIMEOUT:-60}

pg_bin() {
    # The newest server installed (Debian: /usr/lib/postgresql/<major>/bin), else whatever is on PATH.
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
    d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    [ -x "$d/initdb" ] && echo "$d"
    return 0
}

as_postgres() { runuser -u postgres -- env BNN_TESTBED="$DIR" "$@"; }

preflight() {
    [ "$(id -u)" = 0 ] || cannot "postgres: not root (the server runs as user postgres, which only root can become here)"
    BIN=$(pg_bin)
    [ -n "$BIN" ] || cannot "postgres: initdb not found (install the server as root: bash jobs/testbed/install.sh)"
    id postgres >/dev/null 2>&1 || cannot "postgres: no user postgres (the postgresql package creates it)"
    command -v runuser >/dev/null || cannot "postgres: runuser not found (util-linux)"
    command -v python3 >/dev/null || cannot "postgres: python3 not found (it picks the free port)"
}

CMD=$1
[ "$CMD" = start ] && preflight # before touching DIR: when not root, say so (exit 77)
DIR=$(abs_dir "$2")
check_path_length "$DIR" 18 # DIR/.s.PGSQL.PORT

stop() {
    local bin
    bin=$(pg_bin)
    if [ -n "$bin" ] && [ -f "$DIR/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$DIR/data" -m immediate -w -t 20 stop </dev/null >>"$DIR/pg_ctl.out" 2>&1 || true
    fi
    kill_marked "$DIR" 10
}

start() {
    stop # an earlier (maybe crashed) run's server
    rm -rf "${DIR:?}/data" "$DIR/postgres.log" "$DIR/pg_ctl.out" "$DIR"/.s.PGSQL.*
    # The server runs as postgres: it must be able to enter DIR (a mktemp -d folder is 0700 root's) and each folder above.
    chown postgres:postgres "$DIR"
    chmod 0700 "$DIR"
    as_postgres test -x "$DIR" -a -w "$DIR" || cannot "postgres: user postgres cannot enter $DIR (a folder above it is private)"
    local port t0=$SECONDS
    port=$(free_port)
    as_postgres "$BIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync </dev/null \
        >"$DIR/initdb.log" 2>&1 || die "postgres: initdb failed: $(tail -n 5 "$DIR/initdb.log")"
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t "$START_TIMEOUT" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start </dev/null >"$DIR/pg_ctl.out" 2>&1 \
        || { say "postgres: pg_ctl start failed:"; tail -n 15 "$DIR/postgres.log" >&2; stop; exit 1; }
    as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB" </dev/null >>"$DIR/pg_ctl.out" 2>&1 \
        || { say "postgres: createdb $DB failed: $(tail -n 5 "$DIR/pg_ctl.out")"; stop; exit 1; }
    say "postgres: up on 127.0.0.1:$port after $((SECONDS - t0))s (socket in $DIR)"
    echo "TESTBED_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/$DB"
}

status() {
    local bin
    bin=$(pg_bin)
    [ -n "$bin" ] || exit 1
    as_postgres "$bin/pg_ctl" -D "$DIR/data" status
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
