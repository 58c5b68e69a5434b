# Helpers for booting a real systemd in systemd-nspawn (sourced by scripts/systemd-test).
# A Debian bookworm root file system is built with debootstrap when missing and cached (it
# is only read: each boot runs with --volatile=overlay, so nothing is written into it).
#
# The cache is keyed by what debootstrap was asked for (suite, variant, package list): a root
# built from another list is never reused, so adding a package here takes effect on the next
# run everywhere. Roots of older lists are left alone (another run may be booting one right
# now); `rm -rf /var/cache/sudosos-sync` while no test runs reclaims them.

NSPAWN_SUITE=bookworm
# curl: the test's HTTP client inside the container (GET /metrics, POST /trigger/ldap).
# The runtime libraries the binary links (libmariadb3: MariaDB Connector/C, the store of
# SudoSOS's MariaDB) must be here: the shipped binary runs in this root without the toolchain.
NSPAWN_PACKAGES=systemd,systemd-sysv,dbus,libldap-2.5-0,libpq5,libmariadb3,tzdata,libcurl4,libxml2,curl
NSPAWN_CACHE=${SUDOSOS_NSPAWN_CACHE:-/var/cache/sudosos-sync}
nspawn_key() { printf '%s minbase %s\n' "$NSPAWN_SUITE" "$NSPAWN_PACKAGES" | sha256sum | cut -c1-12; }
NSPAWN_ROOT=${SUDOSOS_NSPAWN_ROOT:-$NSPAWN_CACHE/rootfs-$NSPAWN_SUITE-$(nspawn_key)}

# The Debian mirror of this machine's apt sources (the reference machines have one).
nspawn_mirror() {
    local mirror
    mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -1 | awk '{print $2}')
    echo "${mirror:-http://deb.debian.org/debian}"
}

# Builds the root file system when it is missing (2-3 minutes, ~250 MB). A lock keeps two
# runs on one machine from building it at once; the finished root appears in one rename, so
# a half-built one is never taken for the cache.
nspawn_ensure_root() {
    if [ -x "$NSPAWN_ROOT/lib/systemd/systemd" ]; then return 0; fi
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; return 1; }
    mkdir -p "$(dirname "$NSPAWN_ROOT")"
    (
        flock 9
        if [ -x "$NSPAWN_ROOT/lib/systemd/systemd" ]; then exit 0; fi
        echo "building $NSPAWN_ROOT with debootstrap (once per package list)" >&2
        rm -rf "$NSPAWN_ROOT.partial"
        debootstrap --variant=minbase --include="$NSPAWN_PACKAGES" "$NSPAWN_SUITE" "$NSPAWN_ROOT.partial" \
            "$(nspawn_mirror)" >&2
        mv "$NSPAWN_ROOT.partial" "$NSPAWN_ROOT"
    ) 9>"$NSPAWN_ROOT.lock"
}

# nspawn_boot OUTDIR [nspawn options...] [-- init arguments...]: boots the root with a tmpfs
# overlay, OUTDIR bound at /out; returns when the container powers off, or after 240 s (SIGTERM,
# which asks the container to shut down; SIGKILL 30 s later if it does not).
nspawn_boot() {
    local out=$1
    shift
    local options=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do options+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    timeout -k 30 240 systemd-nspawn --register=no --keep-unit -q -D "$NSPAWN_ROOT" --volatile=overlay \
        --bind="$out:/out" "${options[@]}" --boot -- "$@"
}
