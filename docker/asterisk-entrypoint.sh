#!/bin/sh
# Site values that are not in the image, written into the configuration at every start:
# - the secrets Asterisk shares with the CTI server: CTI_AMI_SECRET (the [cti] AMI user) and
#   CTI_AGI_SECRET (carried by every AGI URL); required, and never a placeholder;
# - a password of this site's own for every PJSIP auth still at a change-me placeholder (the
#   phones, the trunk), made once and kept in CTI_SECRETS_DIR (the asterisk-db volume), so that
#   provisioned phones keep working when the container is re-created; the carrier's credentials
#   from CTI_TRUNK_USER / CTI_TRUNK_PASSWORD when given;
# - where the CTI server's FastAGI listens, and AMI on the container network.
# Asterisk is not started while any placeholder secret is left. Then it runs the command given
# (the image's CMD: asterisk in the foreground).
# In the compose deployment the shared secrets come from the `secrets` volume the init service
# filled (CTI_SHARED_SECRETS_DIR: ami-secret, agi-secret) when the environment does not name them;
# RTP uses CTI_RTP_START-CTI_RTP_END (the ports compose publishes); with CTI_SIP_EXTERNAL_ADDRESS
# set, PJSIP puts that address (the one compose publishes SIP and RTP on) in its SIP headers
# and SDP for every peer outside the container networks (CTI_SIP_LOCAL_NETS).
set -eu
ETC="${ASTERISK_ETC:-/etc/asterisk}"
STATE="${CTI_SECRETS_DIR:-/var/lib/asterisk/cti-secrets}"
SHARED="${CTI_SHARED_SECRETS_DIR:-/run/cti-secrets}"
say() { echo "asterisk-entrypoint: $*" >&2; }

if [ -z "${CTI_AMI_SECRET:-}" ] && [ -s "$SHARED/ami-secret" ]; then
    CTI_AMI_SECRET="$(cat "$SHARED/ami-secret")"
fi
if [ -z "${CTI_AGI_SECRET:-}" ] && [ -s "$SHARED/agi-secret" ]; then
    CTI_AGI_SECRET="$(cat "$SHARED/agi-secret")"
fi
export CTI_AMI_SECRET="${CTI_AMI_SECRET:-}" CTI_AGI_SECRET="${CTI_AGI_SECRET:-}"

is_placeholder() {
    case "$1" in "" | change-me* | trunk-password) return 0 ;; esac
    return 1
}
for name in CTI_AMI_SECRET CTI_AGI_SECRET; do
    eval "value=\${$name:-}"
    if is_placeholder "$value"; then
        say "set $name to a secret of this site's own (not empty, not change-me...)"
        exit 1
    fi
    case "$value" in
        *[!A-Za-z0-9._~-]*)
            say "$name: use letters, digits and . _ ~ - only (it travels in a URL)"
            exit 1
            ;;
    esac
done

# Rewrite a file through awk, keeping its owner and mode.
edit() {
    file="$1"
    shift
    awk "$@" "$file" >"$file.new"
    cat "$file.new" >"$file"
    rm -f "$file.new"
}

# Options are set by section; values come from the environment (ENVIRON), never through a
# shell or sed pattern, so any character in a password is safe.
AWK_LIB='
function section_of(line) { sub(/^[ \t]*\[/, "", line); sub(/\].*$/, "", line); return line }
/^[ \t]*\[/ { section = section_of($0) }
function value_of(line) { sub(/^[^=]*=>?[ \t]*/, "", line); sub(/[ \t]*;.*$/, "", line); return line }
function key_of(line) { sub(/^[ \t]*/, "", line); sub(/[ \t]*=.*$/, "", line); return line }
'

export CTI_AGI_HOST="${CTI_AGI_HOST:-cti}" CTI_AGI_PORT="${CTI_AGI_PORT:-4573}"
edit "$ETC/manager.conf" "$AWK_LIB"'
key_of($0) == "bindaddr" && section == "general" { print "bindaddr = 0.0.0.0"; next }
key_of($0) == "secret" && section == "cti" { print "secret = " ENVIRON["CTI_AMI_SECRET"]; next }
{ print }'
edit "$ETC/extensions.conf" "$AWK_LIB"'
section == "globals" && key_of($0) ~ /^CTI_AGI_(HOST|PORT|SECRET)$/ && /=/ {
    print key_of($0) " = " ENVIRON[key_of($0)]; next
}
{ print }'

# Phones and trunk: a stored password for each auth still at a placeholder, made the first time.
mkdir -p "$STATE"
chmod 700 "$STATE"
stored="$STATE/sip-passwords"
touch "$stored"
chmod 600 "$stored"
for section in $(awk "$AWK_LIB"'
    key_of($0) == "password" {
        v = value_of($0)
        if (v == "" || v ~ /^change-me/ || v == "trunk-password") print section
    }' "$ETC/pjsip.conf"); do
    if [ "$section" = carrier ] && [ -n "${CTI_TRUNK_PASSWORD:-}" ]; then
        continue
    fi
    if ! grep -q "^$section " "$stored"; then
        echo "$section $(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >>"$stored"
        say "made a password for the PJSIP auth [$section] (kept in $stored)"
    fi
done
export CTI_STORED_PASSWORDS="$stored"
edit "$ETC/pjsip.conf" "$AWK_LIB"'
BEGIN {
    while ((getline line < ENVIRON["CTI_STORED_PASSWORDS"]) > 0) {
        split(line, f, " "); made[f[1]] = f[2]
    }
}
key_of($0) == "password" && section == "carrier" && ENVIRON["CTI_TRUNK_PASSWORD"] != "" {
    pw = ENVIRON["CTI_TRUNK_PASSWORD"]
    gsub(/;/, "\\;", pw)  # a bare ; starts a comment in the Asterisk files
    print "password = " pw; next
}
key_of($0) == "username" && section == "carrier" && ENVIRON["CTI_TRUNK_USER"] != "" {
    print "username = " ENVIRON["CTI_TRUNK_USER"]; next
}
key_of($0) == "password" && (section in made) {
    v = value_of($0)
    if (v == "" || v ~ /^change-me/ || v == "trunk-password") { print "password = " made[section]; next }
}
{ print }'

# WebRTC softphones (pjsip_webrtc.conf): each agent's password is HMAC-SHA256(CTI_SOFTPHONE_KEY,
# "softphone:<extension>"), the one the CTI server derives and hands to that agent's page
# (cti/softphone.py). Without the key, a stored random one (no softphone can register).
WEBRTC="$ETC/pjsip_webrtc.conf"
if [ -f "$WEBRTC" ]; then
    soft="$STATE/softphone-passwords"
    : >"$soft"
    chmod 600 "$soft"
    for section in $(awk "$AWK_LIB"'
        key_of($0) == "password" && value_of($0) ~ /^(change-me|$)/ { print section }' "$WEBRTC"); do
        if [ -n "${CTI_SOFTPHONE_KEY:-}" ]; then
            pw=$(printf 'softphone:%s' "$section" \
                | openssl dgst -sha256 -hmac "$CTI_SOFTPHONE_KEY" -binary | base64 | tr '+/' '-_' | cut -c1-24)
        else
            grep -q "^webrtc:$section " "$stored" \
                || echo "webrtc:$section $(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >>"$stored"
            pw=$(grep "^webrtc:$section " "$stored" | cut -d' ' -f2)
        fi
        echo "$section $pw" >>"$soft"
    done
    export CTI_SOFTPHONE_PASSWORDS="$soft"
    edit "$WEBRTC" "$AWK_LIB"'
BEGIN { while ((getline line < ENVIRON["CTI_SOFTPHONE_PASSWORDS"]) > 0) { split(line, f, " "); made[f[1]] = f[2] } }
key_of($0) == "password" && (section in made) && value_of($0) ~ /^(change-me|$)/ { print "password = " made[section]; next }
{ print }'
    rm -f "$soft"
fi

# RTP: the range compose publishes (Asterisk's own default, 5000-31000, is not published).
RTP_START="${CTI_RTP_START:-10000}"
RTP_END="${CTI_RTP_END:-10099}"
case "$RTP_START$RTP_END" in *[!0-9]*) say "CTI_RTP_START/CTI_RTP_END: numbers"; exit 1 ;; esac
printf '[general]\nrtpstart = %s\nrtpend = %s\n' "$RTP_START" "$RTP_END" >"$ETC/rtp.conf"

# Behind compose's port publishing (NAT): the published address in SIP and SDP for peers
# outside the container networks.
if [ -n "${CTI_SIP_EXTERNAL_ADDRESS:-}" ]; then
    # Every peer reaches a published port from outside the container network, so none is local
    # unless named (CTI_SIP_LOCAL_NETS: networks, comma-separated).
    export CTI_SIP_LOCAL_NETS="${CTI_SIP_LOCAL_NETS:-}" CTI_SIP_EXTERNAL_PORT="${CTI_SIP_EXTERNAL_PORT:-}"
    edit "$ETC/pjsip.conf" "$AWK_LIB"'
function extra() {
    print "external_signaling_address = " ENVIRON["CTI_SIP_EXTERNAL_ADDRESS"]
    print "external_media_address = " ENVIRON["CTI_SIP_EXTERNAL_ADDRESS"]
    if (ENVIRON["CTI_SIP_EXTERNAL_PORT"] != "") print "external_signaling_port = " ENVIRON["CTI_SIP_EXTERNAL_PORT"]
    n = split(ENVIRON["CTI_SIP_LOCAL_NETS"], nets, ",")
    for (i = 1; i <= n; i++) print "local_net = " nets[i]
    done_ = 1
}
/^[ \t]*\[/ { if (cur == "transport-udp" && !done_) extra(); cur = section_of($0) }
cur == "transport-udp" && key_of($0) ~ /^(external_signaling_(address|port)|external_media_address|local_net)$/ { next }
{ print }
END { if (cur == "transport-udp" && !done_) extra() }'
fi

# The carrier's address (CTI_TRUNK_HOST, host or host:port): where the trunk sends calls, and
# the source address its calls are taken from (pjsip.conf [carrier] aor contact, identify match).
if [ -n "${CTI_TRUNK_HOST:-}" ]; then
    export CTI_TRUNK_ADDR="${CTI_TRUNK_HOST%%:*}"
    edit "$ETC/pjsip.conf" "$AWK_LIB"'
section == "carrier" && key_of($0) == "contact" { print "contact = sip:" ENVIRON["CTI_TRUNK_HOST"]; next }
section == "carrier" && key_of($0) == "match" { print "match = " ENVIRON["CTI_TRUNK_ADDR"]; next }
{ print }'
fi
# A carrier behind NAT (or, in the compose test, SIPp on the host behind the published port):
# answer and send media to where its packets come from.
if [ "${CTI_TRUNK_NAT:-}" = yes ]; then
    edit "$ETC/pjsip.conf" "$AWK_LIB"'
section == "carrier" && key_of($0) ~ /^(rtp_symmetric|force_rport|rewrite_contact)$/ { next }
{ print }
section == "carrier" && key_of($0) == "type" && value_of($0) == "endpoint" {
    print "rtp_symmetric = yes"; print "force_rport = yes"; print "rewrite_contact = yes"
}'
fi

# The shared media volume: Asterisk writes voicemail and call recordings, the CTI server plays
# and deletes them.
MEDIA="${CTI_ASTERISK_MEDIA_DIR:-/var/lib/cti/media}"
if [ -d "$MEDIA" ] && getent passwd asterisk >/dev/null 2>&1; then
    mkdir -p "$MEDIA/recordings" "$MEDIA/calls"
    chown asterisk:asterisk "$MEDIA/recordings" "$MEDIA/calls"
fi

# Only Asterisk (and root) reads the files with secrets in them.
if getent group asterisk >/dev/null 2>&1; then
    chgrp asterisk "$ETC/manager.conf" "$ETC/pjsip.conf" "$ETC/extensions.conf"
    chmod 640 "$ETC/manager.conf" "$ETC/pjsip.conf" "$ETC/extensions.conf"
    if [ -f "$WEBRTC" ]; then chgrp asterisk "$WEBRTC" && chmod 640 "$WEBRTC"; fi
fi

left=$(grep -En '^[[:space:]]*(secret|password|CTI_AGI_SECRET)[[:space:]]*=>?[[:space:]]*(change-me|trunk-password|;|$)' \
    "$ETC/manager.conf" "$ETC/pjsip.conf" "$ETC/extensions.conf" $( [ -f "$WEBRTC" ] && echo "$WEBRTC") \
    | cut -d= -f1 || true)
if [ -n "$left" ]; then
    say "placeholder secrets left, not starting Asterisk:"
    echo "$left" >&2
    exit 1
fi
exec "$@"
