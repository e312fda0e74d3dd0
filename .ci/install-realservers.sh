#!/bin/sh
# Install what the real-server test tier (tests/realservers) needs, on Debian 12: Knot and NSD
# (authoritative), Unbound (recursive), nginx, iptables, iproute2, openssl, and the dig/kdig clients.
# Idempotent: packages already present are left alone. Installing must not start the packaged services
# (the tests start their own, on 127.53.0.0/16), so a policy-rc.d that forbids it is put in place for
# the duration of the install when the machine has none.
set -eu

PACKAGES="knot knot-dnsutils nsd unbound nginx-light iptables iproute2 openssl bind9-dnsutils ca-certificates"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-realservers: must run as root (or with sudo available)" >&2; exit 1
    fi
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-realservers: all packages present"
    exit 0
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=""
cleanup() {
    if [ -n "$created_policy" ]; then $SUDO rm -f "$POLICY"; fi
}
trap cleanup EXIT INT TERM
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    created_policy=1
fi

echo "install-realservers: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing
