#!/bin/sh
# Build this machine's leg: bin/relay-<cpu>-<os triple>, then refresh build/built-from.txt and
# SHA256SUMS.
#
#   build/build.sh
#
# Linux (x86_64 or aarch64; needs python3 >= 3.11 with venv and headers, gcc, patchelf, musl-tools,
# libzstd-dev, zstd, binutils -- Debian: python3-venv python3-dev gcc patchelf musl-tools
# libzstd-dev zstd):
#   1. a throwaway venv in $RELAY_BUILD_DIR (default /tmp/relay-build-<cpu>) with the exact
#      versions of build/requirements.txt, its Nuitka patched by build/patch_nuitka.py;
#   2. Nuitka --mode=standalone of a clean copy of relay/ (the copy is what the source hash covers);
#   3. the static musl extractor stub (build/stub/stub.c, linked with Debian's libzstd.a);
#   4. build/pack.py: dist + the host's loader and libc/libm/libz/libgcc_s -> one file.
# macOS (untested here, used by .github/workflows/build-binaries.yml): Nuitka onefile with a cached
#   extraction dir; macOS has a stable system ABI, so no loader bundling is needed.
#
# Environment: RELAY_BUILD_DIR (work dir, outside the repo), PYTHON (>= 3.11; see below for the
# default), RELAY_STOP_BEFORE_PACK=1 (stop after steps 1-3; build-linux-aarch64.sh packs on the host).
# Reuses the venv and ccache between runs: a warm x86_64 rebuild takes about a minute.
set -eu

REPO=$(CDPATH='' cd -P "$(dirname "$0")/.." && pwd -P)
case $(uname -m) in
    x86_64 | amd64) CPU=x86_64 ;;
    aarch64 | arm64) CPU=aarch64 ;;
    *) echo "build.sh: unsupported CPU $(uname -m)" >&2; exit 1 ;;
esac
case $(uname -s) in
    Linux) TRIPLE=$CPU-unknown-linux-musl ;;
    Darwin) TRIPLE=$CPU-apple-darwin ;;
    *) echo "build.sh: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
WORK=${RELAY_BUILD_DIR:-${TMPDIR:-/tmp}/relay-build-$CPU}
case $WORK in "$REPO"/*) echo "build.sh: RELAY_BUILD_DIR must be outside the repo" >&2; exit 1 ;; esac
# Linux: Debian's own python3 (what the measurements and the arm64 root use). macOS: the python3 on
# PATH (actions/setup-python), never /usr/bin/python3, which is Xcode's 3.9 there.
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ "$(uname -s)" = Linux ] && [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "build.sh: $PYTHON is older than 3.11 (set PYTHON)" >&2
    exit 1
}
OUT=$REPO/bin/relay-$TRIPLE
log() { echo "build.sh [$TRIPLE]: $*" >&2; }
mkdir -p "$WORK" "$REPO/bin"

# 1. venv with pinned build deps; reinstalled when requirements.txt or patch_nuitka.py changes (a
#    new patch applies to a pristine Nuitka, never on top of an older patch).
VENV=$WORK/venv
REQ_SUM=$(cat "$REPO/build/requirements.txt" "$REPO/build/patch_nuitka.py" | cksum)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQ_SUM" ]; then
    log "venv: $VENV ($("$PYTHON" --version))"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -r "$REPO/build/requirements.txt"
    echo "$REQ_SUM" >"$VENV/.requirements"
fi
# Nuitka's runtime imports inspect at every start; patch it to do that on the first import instead.
# Fails the build on any Nuitka but the pinned one; a no-op on a venv it already patched.
"$VENV/bin/python" "$REPO/build/patch_nuitka.py"

# 2. Nuitka from a clean copy of the sources (no __pycache__, nothing else from the work tree).
SRC=$WORK/src
rm -rf "$SRC"
mkdir -p "$SRC"
cp "$REPO/pyproject.toml" "$SRC/"
(cd "$REPO" && find relay -name __pycache__ -prune -o -type f ! -name '*.pyc' -print) |
    while IFS= read -r f; do
        mkdir -p "$SRC/$(dirname "$f")"
        cp "$REPO/$f" "$SRC/$f"
    done

# -m: compile the package with relay/__main__.py as entry; --include-package: submodules that are
# imported lazily are compiled too. -S/isolated: no site-packages scan, ignore PYTHON* variables.
# self-execution: Nuitka refuses argv holding "-c X"/"-m X" (it guards against a program re-running
# itself as python), but those are ordinary message words here (`relay send bob -- python -m x`).
# no_docstrings: nothing reads a docstring at run time (help and tool texts are plain strings), and
# each start unpacks fewer constants: -0.14 M (hook) to -0.47 M (MCP session) instructions.
# _json: anti-bloat leaves out the C accelerator; without it json's fallback parser recurses in
# Python and behaves differently from `python -m relay` on deeply nested input.
# redis: redis-py for AGENT_RELAY_URL (relay/store/redisdb.py imports it only then, so a local run
# loads none of it). `import redis` itself imports redis.asyncio and asyncio, so those stay. Left
# out: its optional extras (hiredis, OCSP through cryptography/pyOpenSSL/requests, PyJWT); redis-py
# falls back to its own parser when hiredis is missing, and OCSP is never asked for.
# redis-py (and async-timeout, which it imports on Python < 3.11.3) go in as bytecode, like the
# standard library, not as compiled C: compiled, they more than doubled relay.bin's code and
# constants, and every start of every face paid for the bigger program (~+20 % wall time, +3 MiB
# RSS) although none but a Redis store's imports them. As bytecode they sit in the bytecode blob,
# which a start touches only where a module is loaded from it.
# build/relay.nuitka-package.config.yml leaves the annotations out of relay's compiled modules:
# nothing reads them at run time, and building them cost every start ~3-7 % of its instructions.
set -- --python-flag=-m --python-flag=no_site --python-flag=isolated --python-flag=no_docstrings \
    --include-package=relay --include-module=_json --no-deployment-flag=self-execution \
    --user-package-configuration-file="$REPO/build/relay.nuitka-package.config.yml" \
    --include-package=redis --noinclude-custom-mode=redis:bytecode \
    --noinclude-custom-mode=async_timeout:bytecode \
    --nofollow-import-to=redis.ocsp --nofollow-import-to=hiredis \
    --nofollow-import-to=cryptography --nofollow-import-to=OpenSSL --nofollow-import-to=requests \
    --nofollow-import-to=jwt \
    --output-dir="$WORK/nuitka" --assume-yes-for-downloads \
    --noinclude-pytest-mode=nofollow --noinclude-setuptools-mode=nofollow
if [ "$(uname -s)" = Darwin ]; then
    # One file per platform on macOS: Nuitka's own onefile, unpacked once into the user cache dir,
    # keyed by the source hash so a new build never reuses an old unpacked copy.
    SRC_HASH=$("$PYTHON" "$REPO/build/source_hash.py" "$SRC")
    set -- "$@" --mode=onefile --onefile-cache-mode=cached --output-filename="relay-$TRIPLE" \
        --onefile-tempdir-spec="{CACHE_DIR}/session-relay/onefile-$(echo "$SRC_HASH" | cut -c1-20)"
    log "nuitka (onefile) ..."
    (cd "$SRC" && "$VENV/bin/python" -m nuitka "$@" relay)
    cp "$WORK/nuitka/relay-$TRIPLE" "$OUT.tmp"
else
    # -no-pie: relay.bin is linked at a fixed address. As a position-independent executable it
    # carried ~42 700 relative relocations that the loader applied at every start, writing (and so
    # copying, ~3 us a page on this VM) ~180 pages of its data that a start otherwise only reads.
    # The cost is that the program's own code and data are not placed at a random address (its
    # libraries, heap and stack still are), as with Debian's own /usr/bin/python3, also non-PIE.
    log "nuitka (standalone) ..."
    rm -rf "$WORK/nuitka/relay.dist"
    (cd "$SRC" && LDFLAGS="${LDFLAGS:+$LDFLAGS }-no-pie" \
        "$VENV/bin/python" -m nuitka --mode=standalone "$@" --output-filename=relay.bin relay) \
        >"$WORK/nuitka.log" 2>&1 || { tail -30 "$WORK/nuitka.log" >&2; exit 1; }

    # 3. The stub: static musl, with Debian's libzstd.a for the payload (zstd.h copied to a
    #    private include dir because musl-gcc does not search /usr/include).
    log "stub ..."
    ZSTD_A=$(gcc -print-file-name=libzstd.a)
    [ -f "$ZSTD_A" ] || { log "libzstd.a not found: apt-get install libzstd-dev"; exit 1; }
    mkdir -p "$WORK/stubinc"
    cp /usr/include/zstd.h /usr/include/zstd_errors.h "$WORK/stubinc/"
    musl-gcc -static -Os -s -Wall -Wextra -Werror -I"$WORK/stubinc" \
        "$REPO/build/stub/stub.c" "$ZSTD_A" -o "$WORK/stub"

    # The aarch64 leg packs on the x86_64 host (native zstd is ~10x faster than under qemu).
    if [ "${RELAY_STOP_BEFORE_PACK:-}" = 1 ]; then
        log "dist and stub ready in $WORK"
        exit 0
    fi

    # 4. One file.
    log "pack ..."
    "$PYTHON" "$REPO/build/pack.py" --dist "$WORK/nuitka/relay.dist" --stub "$WORK/stub" \
        --out "$OUT.tmp"
fi
PYTHON=$PYTHON "$REPO/build/finish.sh" "$TRIPLE" "$OUT.tmp" "$SRC"
