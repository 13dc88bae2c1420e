#!/bin/sh
# The CTI image's entrypoint.
#
# `cti-entrypoint init` (the compose file's one-shot `init` service, before anything else starts):
#   the secrets the three containers share, made once into CTI_SECRETS_DIR (the `secrets`
#   volume): ami-secret, agi-secret, postgres-password. A value given in the environment
#   (CTI_AMI_SECRET, CTI_AGI_SECRET, POSTGRES_PASSWORD) replaces the stored one (rotation);
#   otherwise a random one is made the first time and kept. Also the folders of the shared
#   `media` volume.
# Anything else (the CMD, `cti serve`): reads those secrets into CTI_AMI_SECRET, CTI_AGI_SECRET
#   and CTI_DATABASE_URL, waits for PostgreSQL, synthesises the IVR's prompts into the `prompts`
#   volume Asterisk plays them from (once per catalogue), then runs the command. `cti serve`
#   applies the database migrations itself before it serves (upgrade: docs in the README).
set -eu
SECRETS="${CTI_SECRETS_DIR:-/run/cti-secrets}"
say() { echo "cti-entrypoint: $*" >&2; }

# store NAME VALUE-OR-EMPTY: keep SECRETS/NAME, or write the given value / a random one.
store() {
    file="$SECRETS/$1"
    if [ -n "$2" ]; then
        if [ ! -f "$file" ] || [ "$(cat "$file")" != "$2" ]; then
            printf '%s' "$2" >"$file.new"
            mv "$file.new" "$file"
            say "$1: the value from the environment is stored"
        fi
    elif [ ! -s "$file" ]; then
        head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$file.new"
        mv "$file.new" "$file"
        say "$1: made a new secret (kept in the secrets volume)"
    fi
}

if [ "${1:-}" = init ]; then
    umask 077
    mkdir -p "$SECRETS"
    chmod 700 "$SECRETS"
    for name in CTI_AMI_SECRET CTI_AGI_SECRET; do
        eval "value=\${$name:-}"
        case "$value" in
            change-me*)
                say "$name: a placeholder; set a secret of this site's own or leave it unset"
                exit 1
                ;;
            *[!A-Za-z0-9._~-]*)
                say "$name: use letters, digits and . _ ~ - only (it travels in a URL)"
                exit 1
                ;;
        esac
    done
    store ami-secret "${CTI_AMI_SECRET:-}"
    store agi-secret "${CTI_AGI_SECRET:-}"
    store postgres-password "${POSTGRES_PASSWORD:-}"
    media="${CTI_MEDIA_DIR:-/var/lib/cti/media}"
    umask 022
    mkdir -p "$media/recordings" "$media/calls" "$media/announcements"
    # Asterisk (another user, in another container) writes recordings here; this server reads,
    # plays and deletes them.
    chmod 1777 "$media/recordings" "$media/calls"
    exit 0
fi

secret() {
    if [ ! -s "$SECRETS/$1" ]; then
        say "$SECRETS/$1 is missing: the init service makes it (podman-compose up / docker compose up)"
        exit 1
    fi
    cat "$SECRETS/$1"
}
CTI_AMI_SECRET="$(secret ami-secret)"
CTI_AGI_SECRET="$(secret agi-secret)"
export CTI_AMI_SECRET CTI_AGI_SECRET
if [ -z "${CTI_DATABASE_URL:-}" ]; then
    pg_host="${POSTGRES_HOST:-postgres}"
    pg_port="${POSTGRES_PORT:-5432}"
    password="$(secret postgres-password | python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))')"
    CTI_DATABASE_URL="postgresql+asyncpg://${POSTGRES_USER:-cti}:${password}@${pg_host}:${pg_port}/${POSTGRES_DB:-cti}"
    export CTI_DATABASE_URL
    waited=0
    until pg_isready -q -h "$pg_host" -p "$pg_port" -U "${POSTGRES_USER:-cti}"; do
        waited=$((waited + 1))
        if [ "$waited" -ge 120 ]; then
            say "PostgreSQL at $pg_host:$pg_port did not answer in 120 s"
            exit 1
        fi
        sleep 1
    done
fi
if [ -n "${CTI_PROMPTS_DIR:-}" ]; then
    cti prompts build --sounds-dir "$CTI_PROMPTS_DIR" \
        ${CTI_CONFIG_DIR:+--config-dir "$CTI_CONFIG_DIR"} \
        $( [ -n "${CTI_CONFIG_DIR:-}" ] && [ -d "$CTI_CONFIG_DIR/prompts" ] && echo --recorded "$CTI_CONFIG_DIR/prompts" )
fi
exec "$@"
