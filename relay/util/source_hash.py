"""What a binary is built from: the hash of relay's sources, and the record of each binary's build.

The one definition of "the sources a binary is built from", shared by the build (build/source_hash.py
runs it) and `relay doctor` (which asks whether the checkout's binary is stale), so the two can
never disagree about which files count.

Source hash: sha256 over every file under relay/ (except __pycache__ and *.pyc) and pyproject.toml,
in sorted path order, each as "<posix path>\\0<sha256 of content>\\n". Line endings are not
normalised: the build reads the files exactly as they are checked out.

build/built-from.txt has one line per binary: "<triple> <sha256 of the binary> <source hash>".
"""

import hashlib

TYPE_CHECKING = False  # pathlib only where a caller already has paths; doctor imports this lazily
if TYPE_CHECKING:
    from pathlib import Path

RECORD_NAME = "build/built-from.txt"


def source_files(root: "Path") -> "list[Path]":
    """The files a binary is built from, in the order they are hashed."""
    files = [
        p for p in (root / "relay").rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    files.append(root / "pyproject.toml")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def source_hash(root: "Path") -> str:
    """The hash of the sources under `root` (a checkout)."""
    h = hashlib.sha256()
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + file_sha256(path).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_sha256(path: "Path") -> str:
    """sha256 of a file's content, read in chunks (a binary is tens of megabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_record(record: "Path") -> dict[str, tuple[str, str]]:
    """triple -> (binary sha256, source hash), from a built-from record (empty when it is missing)."""
    entries = {}
    if record.exists():
        for line in record.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                triple, binary, source = line.split()
                entries[triple] = (binary, source)
    return entries


def write_record(triple: str, binary: "Path", src_root: "Path", record: "Path") -> None:
    """Note in `record` that `binary` (bin/relay-<triple>) was built from the sources in `src_root`."""
    entries = read_record(record)
    entries[triple] = (file_sha256(binary), source_hash(src_root))
    lines = ["# <triple> <sha256 of bin/relay-<triple>> <source hash> (relay/util/source_hash.py)"]
    lines += [f"{t} {b} {s}" for t, (b, s) in sorted(entries.items())]
    record.write_text("\n".join(lines) + "\n")
