#!/bin/sh
# Install the Debian packages named on the command line when any is missing (make deps).
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing; run 'make deps' as root or apt-get install them" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2 || {
    echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
