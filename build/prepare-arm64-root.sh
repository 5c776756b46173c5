#!/bin/sh
# Prepare an arm64 Debian root for building the linux aarch64 leg under qemu-user.
#
#   sudo build/prepare-arm64-root.sh [ROOT]      (default ROOT: /work/arm64-root, or $RELAY_ARM64_ROOT)
#
# Needs root, debootstrap, qemu-user-static and binfmt-support (Debian packages). Takes ~3-5 minutes.
# The root lives outside the repository; build/build-linux-aarch64.sh uses it. Re-running is cheap:
# an existing root is only topped up with the packages below.
set -eu

ROOT=${1:-${RELAY_ARM64_ROOT:-/work/arm64-root}}
SUITE=bookworm
MIRROR=${RELAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the Nuitka build needs inside the root: a C compiler, Python headers and venv, patchelf
# (Nuitka standalone rewrites rpaths), ccache (warm rebuilds), musl-gcc + libzstd-dev (the static
# extractor stub), zstd (payload compression), ca-certificates (pip over https).
PACKAGES="python3 python3-venv python3-dev gcc make ccache patchelf musl-tools libzstd-dev zstd"
PACKAGES="$PACKAGES zlib1g ca-certificates"

[ "$(id -u)" = 0 ] || { echo "prepare-arm64-root: must run as root" >&2; exit 1; }

# binfmt_misc lets the kernel run aarch64 ELF files through qemu (flag F: works inside a chroot).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
    echo "prepare-arm64-root: qemu-aarch64 binfmt handler missing (apt-get install qemu-user-static binfmt-support)" >&2
    exit 1
}

# A clean environment: host PIP_*/proxy/locale variables must not leak into the root by accident.
clean_env() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"
}

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    clean_env debootstrap --arch=arm64 --variant=minbase \
        --include="$(echo "$PACKAGES" | tr ' ' ',')" "$SUITE" "$ROOT" "$MIRROR"
else
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    clean_env chroot "$ROOT" apt-get install -y -q $PACKAGES
fi

# The host's CA bundle (it may hold a local egress CA) and resolver, so pip works inside the root.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
echo "prepare-arm64-root: ready: $ROOT ($(chroot "$ROOT" /usr/bin/python3 --version))"
