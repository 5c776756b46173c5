#!/bin/sh
# Rebuild both Linux legs on an x86_64 Linux machine (as root): the aarch64 leg under qemu in the
# background, the x86_64 leg meanwhile (they serialise their bookkeeping with a lock), then verify.
#
#   build/build-all.sh     # wall time = the aarch64 leg: ~4-6 min warm, ~15 min cold on 2 cores
set -eu
here=$(CDPATH='' cd -P "$(dirname "$0")" && pwd -P)
log=${TMPDIR:-/tmp}/relay-build-aarch64.log
"$here/build-linux-aarch64.sh" >"$log" 2>&1 &
arm=$!
"$here/build.sh" || { wait "$arm" || true; exit 1; }
if ! wait "$arm"; then
    tail -30 "$log" >&2
    echo "build-all: aarch64 leg failed (log: $log)" >&2
    exit 1
fi
tail -1 "$log" >&2
cd "$here/.." && sha256sum -c SHA256SUMS
