"""The hash of the sources a binary is built from, and the record of what each binary was built from.

    python3 build/source_hash.py [SRC_ROOT]               print the source hash of SRC_ROOT (default: repo)
    python3 build/source_hash.py --record TRIPLE BINARY SRC_ROOT
                                                          note in build/built-from.txt that BINARY
                                                          (bin/relay-TRIPLE) was built from SRC_ROOT

Source hash: sha256 over every file under relay/ (except __pycache__ and *.pyc) and pyproject.toml,
in sorted path order, each as "<posix path>\\0<sha256 of content>\\n". Line endings are not
normalised: the build reads the files exactly as they are checked out.

build/built-from.txt has one line per binary: "<triple> <sha256 of the binary> <source hash>".
tests/test_freshness.py recomputes both and fails when a committed binary is stale or was replaced
without a rebuild.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "build" / "built-from.txt"


def source_files(root: Path) -> list[Path]:
    files = [
        p for p in (root / "relay").rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    files.append(root / "pyproject.toml")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def source_hash(root: Path = REPO) -> str:
    h = hashlib.sha256()
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).hexdigest().encode())
        h.update(b"\n")
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_record(record: Path = RECORD) -> dict[str, tuple[str, str]]:
    """triple -> (binary sha256, source hash)."""
    entries = {}
    if record.exists():
        for line in record.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                triple, binary, source = line.split()
                entries[triple] = (binary, source)
    return entries


def write_record(triple: str, binary: Path, src_root: Path, record: Path = RECORD) -> None:
    entries = read_record(record)
    entries[triple] = (file_sha256(binary), source_hash(src_root))
    lines = ["# <triple> <sha256 of bin/relay-<triple>> <source hash> (build/source_hash.py)"]
    lines += [f"{t} {b} {s}" for t, (b, s) in sorted(entries.items())]
    record.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--record"] and len(argv) == 4:
        write_record(argv[1], Path(argv[2]), Path(argv[3]))
    elif len(argv) <= 1 and not (argv and argv[0].startswith("-")):
        print(source_hash(Path(argv[0]) if argv else REPO))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
