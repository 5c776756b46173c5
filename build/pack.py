"""Turn a Nuitka standalone dist into one self-extracting Linux executable.

    python3 build/pack.py --dist DIST --stub STUB --out bin/relay-<triple> [--sysroot ROOT]

1. The bundle = the dist + the dynamic loader named in relay.bin's PT_INTERP (stored as `ld.so`) +
   every shared library the dist's ELF files need that the dist does not already hold (libc, libm,
   libz, libgcc_s ...), found with `ldd` (run inside --sysroot with chroot for a foreign-arch root).
   With these the program needs nothing from the host's libc: the stub starts it as
   `ld.so --library-path DIR DIR/relay.bin`.
2. The bundle is serialised in a fixed order with normalised modes and no timestamps (so equal
   inputs give equal bytes), compressed with the `zstd` CLI (level 19, with a content checksum),
   and appended to the stub with a trailer: sha256 hex of the payload, payload offset, payload size,
   magic. build/stub/stub.c reads exactly this layout.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

MAGIC = b"RELAYPK1"
ZSTD_LEVEL = "-19"


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def interpreter(path: Path) -> str:
    """The PT_INTERP path of an ELF executable (readelf keeps this free of an ELF parser)."""
    out = subprocess.run(["readelf", "-l", str(path)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Requesting program interpreter:" in line:
            return line.split(":", 1)[1].strip().rstrip("]")
    sys.exit(f"pack: {path} has no program interpreter; is it a standalone dist?")


def in_root(sysroot: Path, path: str) -> Path:
    """The host path of `path` as seen from inside sysroot: symlinks are followed one hop at a time,
    absolute targets relative to sysroot (a plain resolve() would escape to the host's files)."""
    current, parts, hops = sysroot, list(PurePosixPath(path).parts[1:]), 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != sysroot else sysroot
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                sys.exit(f"pack: symlink loop at {candidate}")
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                current, parts = sysroot, [*target.parts[1:], *parts]
            else:
                parts = [*target.parts, *parts]
        else:
            current = candidate
    return current


def needed_libs(elf: Path, sysroot: Path) -> dict[str, Path]:
    """soname -> host path, for the libraries ldd resolves for `elf` (viewed from sysroot)."""
    if sysroot == Path("/"):
        cmd = ["ldd", str(elf)]
    else:
        cmd = ["chroot", str(sysroot), "ldd", "/" + str(elf.relative_to(sysroot))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    libs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            if parts[2] == "not":
                sys.exit(f"pack: {elf}: {parts[0]} not found")
            libs[parts[0]] = in_root(sysroot, parts[2])
    return libs


def assemble(dist: Path, sysroot: Path, bundle: Path) -> None:
    shutil.copytree(dist, bundle, symlinks=False)
    shutil.copy(in_root(sysroot, interpreter(dist / "relay.bin")), bundle / "ld.so")
    elves = [p for p in sorted(bundle.rglob("*")) if p.is_file() and is_elf(p)]
    # ldd must see the dist where it lies inside the sysroot, so it runs on the original dist.
    for elf in [p for p in sorted(dist.rglob("*")) if p.is_file() and is_elf(p)]:
        for soname, path in needed_libs(elf, sysroot).items():
            if path.is_relative_to(dist) or (bundle / soname).exists():
                continue
            shutil.copy(path, bundle / soname)  # follows the symlink: the real library
            elves.append(bundle / soname)
    for path in elves:
        path.chmod(0o755)


def serialise(bundle: Path) -> bytes:
    """Records as read by stub.c unpack(): type, mode u32, path length u32, path[, size u64, data]."""
    out = bytearray()
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix().encode()
        if path.is_symlink():
            sys.exit(f"pack: unexpected symlink in bundle: {path}")
        if path.is_dir():
            out += b"d" + struct.pack("<II", 0o755, len(rel)) + rel
        else:
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            data = path.read_bytes()
            out += b"f" + struct.pack("<II", mode, len(rel)) + rel
            out += struct.pack("<Q", len(data)) + data
    return bytes(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", type=Path, required=True, help="Nuitka standalone dist dir")
    ap.add_argument("--stub", type=Path, required=True, help="static extractor stub")
    ap.add_argument("--out", type=Path, required=True, help="executable to write")
    ap.add_argument("--sysroot", type=Path, default=Path("/"), help="root the dist was built in")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="relay-pack-") as tmp:
        bundle = Path(tmp) / "bundle"
        assemble(args.dist.resolve(), args.sysroot.resolve(), bundle)
        archive = Path(tmp) / "archive"
        archive.write_bytes(serialise(bundle))
        subprocess.run(
            ["zstd", "-q", "-f", ZSTD_LEVEL, "--check", str(archive), "-o", f"{archive}.zst"],
            check=True,
        )
        payload = Path(f"{archive}.zst").read_bytes()
        sizes = sorted((p.stat().st_size, p.name) for p in bundle.rglob("*") if p.is_file())

    stub = args.stub.read_bytes()
    digest = hashlib.sha256(payload).hexdigest().encode()
    trailer = digest + struct.pack("<QQ", len(stub), len(payload)) + MAGIC
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_bytes(stub + payload + trailer)
    tmp_out.chmod(0o755)
    tmp_out.replace(args.out)
    total = sum(s for s, _ in sizes)
    print(
        f"pack: {args.out}: {args.out.stat().st_size} bytes "
        f"(stub {len(stub)}, payload {len(payload)} from {total} bytes in {len(sizes)} files; "
        f"largest: {', '.join(n for _, n in sizes[-3:])})"
    )


if __name__ == "__main__":
    main()
