#!/bin/sh
# Rewrite SHA256SUMS (repo root) for every file in bin/, in `sha256sum -c` format.
# Verify with: sha256sum -c SHA256SUMS   (from the repo root)
set -eu
cd "$(dirname "$0")/.."
if command -v sha256sum >/dev/null 2>&1; then
    sum() { sha256sum "$@"; }
else
    sum() { shasum -a 256 "$@"; } # macOS
fi
# Collected in a temp file first so a failure never leaves a half-written SHA256SUMS.
sum bin/* >SHA256SUMS.tmp
mv -f SHA256SUMS.tmp SHA256SUMS
