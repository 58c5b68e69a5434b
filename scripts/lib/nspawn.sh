# Helpers for booting a real systemd in systemd-nspawn (sourced by scripts/systemd-test).
# A Debian bookworm root file system is built with debootstrap when missing and cached (it
# is only read: each boot runs with --volatile=overlay, so nothing is written into it).

NSPAWN_ROOT=${SUDOSOS_NSPAWN_ROOT:-/var/cache/sudosos-sync/rootfs-bookworm}
NSPAWN_PACKAGES=systemd,systemd-sysv,dbus,libldap-2.5-0,libpq5,tzdata,libcurl4,libxml2

# The Debian mirror of this machine's apt sources (the reference machines have one).
nspawn_mirror() {
    local mirror
    mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -1 | awk '{print $2}')
    echo "${mirror:-http://deb.debian.org/debian}"
}

# Builds the root file system when it is missing (2-3 minutes, ~250 MB).
nspawn_ensure_root() {
    if [ -x "$NSPAWN_ROOT/lib/systemd/systemd" ]; then return 0; fi
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; return 1; }
    echo "building $NSPAWN_ROOT with debootstrap (once)" >&2
    mkdir -p "$(dirname "$NSPAWN_ROOT")"
    rm -rf "$NSPAWN_ROOT.partial"
    debootstrap --variant=minbase --include="$NSPAWN_PACKAGES" bookworm "$NSPAWN_ROOT.partial" "$(nspawn_mirror)" >&2
    mv "$NSPAWN_ROOT.partial" "$NSPAWN_ROOT"
}

# nspawn_boot OUTDIR [nspawn options...] [-- init arguments...]: boots the root with a tmpfs
# overlay, OUTDIR bound at /out; returns when the container powers off (or after 240 s).
nspawn_boot() {
    local out=$1
    shift
    local options=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do options+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    timeout 240 systemd-nspawn --register=no --keep-unit -q -D "$NSPAWN_ROOT" --volatile=overlay \
        --bind="$out:/out" "${options[@]}" --boot -- "$@"
}
