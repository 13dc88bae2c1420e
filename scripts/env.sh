# Sourced by scripts/demo, scripts/test and .ci/run: makes this machine ready, idempotently.
#  - Debian packages the project needs on the host (the Asterisk sandbox root builder, Chromium
#    and CJK fonts for the browser tests, PostgreSQL's initdb/pg_ctl for the tests' own database
#    server), installed with apt-get when missing;
#  - a virtualenv in .venv with the pinned Python dependencies, reinstalled when pyproject changes.
# The Asterisk root itself is built by `cti sandbox up` (cached in ~/.cache/cti).
set -euo pipefail
CTI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$CTI_ROOT"

_need_debs=()
# slapd: tests/support/slapd.py runs an OpenLDAP server of its own (the directory sync tests).
# dovecot-imapd, dovecot-lmtpd: tests/support/dovecot.py runs an IMAP server of its own (the
# desk's mailbox) that the tests' SMTP server delivers into over LMTP (the e-mail intake tests).
# sip-tester (SIPp) and baresip: the SIP tier (tests/sip) puts a real carrier and real agent
# phones on the sandbox's PJSIP over loopback.
# redis-server: tests/support/redis.py runs a broker of its own (several server nodes share live
# events through Redis Streams; tests/integration/test_nodes.py).
# podman, runc and the CNI plugins (dnsname: the compose services find each other by name):
# tests/compose builds and runs docker-compose.yml (no Docker daemon; podman-compose from PyPI).
# The sandbox root is built with debootstrap as root, with mmdebstrap (user namespaces) otherwise.
if [[ $(id -u) -eq 0 ]]; then _builder=debootstrap:debootstrap; else _builder=mmdebstrap:mmdebstrap; fi
for spec in "$_builder" chromium:chromium \
            fonts-noto-cjk:/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
            slapd:/usr/sbin/slapd dovecot-imapd:/usr/lib/dovecot/imap \
            dovecot-lmtpd:/usr/lib/dovecot/lmtp sip-tester:sipp baresip:baresip \
            redis-server:redis-server \
            podman:podman runc:runc containernetworking-plugins:/usr/lib/cni/bridge \
            golang-github-containernetworking-plugin-dnsname:/usr/lib/cni/dnsname; do
    pkg="${spec%%:*}"; probe="${spec#*:}"
    if [[ "$probe" == /* ]]; then [[ -e "$probe" ]] || _need_debs+=("$pkg")
    else command -v "$probe" >/dev/null 2>&1 || _need_debs+=("$pkg"); fi
done
# tests/support/postgres.py runs a server of its own with these (any major version).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || _need_debs+=(postgresql)
if (( ${#_need_debs[@]} )); then
    echo "env: installing Debian packages: ${_need_debs[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        "${_need_debs[@]}" >/dev/null
fi

PY="${CTI_PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "env: creating .venv" >&2
    "$PY" -m venv .venv
fi
_stamp=".venv/.cti-deps-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -e "$_stamp" ]]; then
    echo "env: installing Python dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.cti-deps-*
    touch "$_stamp"
fi
# The softphone's JavaScript (JsSIP, esbuild) from the npm registry, as package-lock.json pins
# it, when node is here: scripts/build-softphone bundles it. The bundle is committed, so running
# the server or the tests needs no node.
_npm_stamp="desk/web/softphone/node_modules/.cti-lock-$(sha256sum desk/web/softphone/package-lock.json | cut -c1-16)"
if command -v npm >/dev/null 2>&1 && [[ ! -e "$_npm_stamp" ]]; then
    echo "env: installing the softphone's node packages (npm ci)" >&2
    (cd desk/web/softphone && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
    touch "$_npm_stamp"
fi
export PATH="$CTI_ROOT/.venv/bin:$PATH"
# Compiled bytecode is kept, outside the tree: a machine that sets PYTHONDONTWRITEBYTECODE (this
# kind does) otherwise compiles every module in every process, and pytest rewrites the asserts of
# every test module in every worker of every pass again (half of a collection's 10 CPU s).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${CTI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cti}/pycache"
