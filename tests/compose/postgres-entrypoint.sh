#!/bin/sh
# The official postgres image's start-up, as far as the compose file uses it.
set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
USER_="${POSTGRES_USER:-postgres}"
DB="${POSTGRES_DB:-$USER_}"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres-entrypoint: POSTGRES_PASSWORD(_FILE) is not set" >&2
        exit 1
    fi
    pw="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" >"$pw"
    chown postgres "$pw"
    as_postgres "$BIN/initdb" -D "$PGDATA" -U "$USER_" --pwfile="$pw" -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pw"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    if [ "$DB" != postgres ]; then
        echo "CREATE DATABASE \"$DB\" OWNER \"$USER_\";" \
            | as_postgres "$BIN/postgres" --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres-entrypoint: initialised $PGDATA (database $DB, user $USER_)" >&2
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -D "$PGDATA"
