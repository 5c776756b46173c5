#!/bin/sh
# Build the linux aarch64 leg (bin/relay-aarch64-unknown-linux-musl) on an x86_64 Linux machine:
# build/build.sh runs inside an arm64 Debian root under qemu-user (binfmt_misc), with this repository
# bind-mounted at /src, up to the Nuitka dist and the stub; build/pack.py then packs them on the host.
# Same scheme as the host leg, with the arm64 root's loader and libs.
#
#   build/prepare-arm64-root.sh      # once, ~3-5 min (debootstrap)
#   build/build-linux-aarch64.sh     # ~14 min cold, ~7.5 min warm on 2 cores (Nuitka under emulation)
#
# Needs root (chroot, mount). ROOT: $RELAY_ARM64_ROOT, default /work/arm64-root.
set -eu

REPO=$(CDPATH='' cd -P "$(dirname "$0")/.." && pwd -P)
ROOT=${RELAY_ARM64_ROOT:-/work/arm64-root}
[ "$(id -u)" = 0 ] || { echo "build-linux-aarch64: must run as root" >&2; exit 1; }
[ -x "$ROOT/usr/bin/python3" ] || "$REPO/build/prepare-arm64-root.sh" "$ROOT"
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
fi

mkdir -p "$ROOT/src" "$ROOT/proc" "$ROOT/dev"
cleanup() {
    for m in "$ROOT/src" "$ROOT/dev" "$ROOT/proc"; do
        umount "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM
mount --bind "$REPO" "$ROOT/src"
mount --bind /dev "$ROOT/dev"
mount -t proc proc "$ROOT/proc"

# A clean environment (`env -i`): only what the build needs is carried over on purpose -- pip's CA
# bundle (the host's, copied by prepare-arm64-root.sh), its timeout, and proxies when set.
set -- PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 TMPDIR=/tmp \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-180}"
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    eval "val=\${$v:-}"
    # shellcheck disable=SC2154  # val is assigned by the eval above
    [ -n "$val" ] && set -- "$@" "$v=$val"
done
env -i "$@" RELAY_STOP_BEFORE_PACK=1 chroot "$ROOT" /bin/sh /src/build/build.sh

# Pack on the host: zstd -19 is ~10x faster natively; pack.py runs ldd inside the root to find the
# arm64 libraries. The build dir is build.sh's default inside the root.
work=$ROOT/tmp/relay-build-aarch64
out=$REPO/bin/relay-aarch64-unknown-linux-musl
python3 "$REPO/build/pack.py" --sysroot "$ROOT" --dist "$work/nuitka/relay.dist" --stub "$work/stub" \
    --out "$out.tmp"
"$REPO/build/finish.sh" aarch64-unknown-linux-musl "$out.tmp" "$work/src"
