"""The hash of the sources a binary is built from, and the record of what each binary was built from.

    python3 build/source_hash.py [SRC_ROOT]               print the source hash of SRC_ROOT (default: repo)
    python3 build/source_hash.py --record TRIPLE BINARY SRC_ROOT
                                                          note in build/built-from.txt that BINARY
                                                          (bin/relay-TRIPLE) was built from SRC_ROOT

The rule itself lives in relay/util/source_hash.py, so that `relay doctor` and the build agree on it;
this script is the build's command line around it. tests/distribution/test_freshness.py recomputes both and fails
when a committed binary is stale or was replaced without a rebuild.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "build" / "built-from.txt"
sys.path.insert(0, str(REPO))

from relay.util import source_hash as rule  # noqa: E402

file_sha256 = rule.file_sha256


def source_hash(root: Path = REPO) -> str:
    return rule.source_hash(root)


def read_record(record: Path = RECORD) -> dict[str, tuple[str, str]]:
    return rule.read_record(record)


def write_record(triple: str, binary: Path, src_root: Path, record: Path = RECORD) -> None:
    rule.write_record(triple, binary, src_root, record)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--record"] and len(argv) == 4:
        write_record(argv[1], Path(argv[2]), Path(argv[3]))
    elif len(argv) <= 1 and not (argv and argv[0].startswith("-")):
        print(source_hash(Path(argv[0]) if argv else REPO))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
