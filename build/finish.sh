#!/bin/sh
# Last step of every leg: smoke-run the new file, put it in place, record what it was built from
# (build/built-from.txt) and refresh SHA256SUMS.
#
#   build/finish.sh TRIPLE NEW_FILE SRC_DIR    (SRC_DIR: the source copy the binary was built from)
set -eu
[ $# -eq 3 ] || { echo "usage: build/finish.sh TRIPLE NEW_FILE SRC_DIR" >&2; exit 2; }
TRIPLE=$1 NEW=$2 SRC=$3
REPO=$(CDPATH='' cd -P "$(dirname "$0")/.." && pwd -P)
OUT=$REPO/bin/relay-$TRIPLE
PYTHON=${PYTHON:-python3}

# A file that does not run never replaces a good one.
chmod 755 "$NEW"
"$NEW" --version >&2 || { echo "finish.sh: the new $TRIPLE binary does not run" >&2; exit 1; }
mv -f "$NEW" "$OUT"

# The legs may be built at the same time (build-all.sh): serialise the read-modify-write of
# build/built-from.txt and SHA256SUMS with a lock on a file every checkout has (flock(1) is
# util-linux; macOS runners build one leg per machine and need no lock).
if command -v flock >/dev/null 2>&1; then
    exec 9<"$REPO/build/sums.sh"
    flock 9
fi
"$PYTHON" "$REPO/build/source_hash.py" --record "$TRIPLE" "$OUT" "$SRC"
"$REPO/build/sums.sh"
echo "finish.sh: $OUT ($(wc -c <"$OUT") bytes) recorded in build/built-from.txt and SHA256SUMS" >&2
