"""bin/ can never be stale or unverified.

build/build.sh records, per binary, its sha256 and the hash of the relay/ sources + pyproject.toml
it was compiled from (build/built-from.txt, see build/source_hash.py). These tests recompute both:
editing relay/ without rebuilding, or replacing a binary without the build, fails here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from binary_support import BIN, LINUX_TRIPLES, REPO, load_source_hash, sha256

source_hash = load_source_hash()
REBUILD = {
    "x86_64-unknown-linux-musl": "build/build.sh on x86_64 Linux",
    "aarch64-unknown-linux-musl": "build/build-linux-aarch64.sh",
}


def binaries() -> list[Path]:
    return sorted(p for p in BIN.iterdir() if p.is_file()) if BIN.is_dir() else []


@pytest.mark.parametrize("triple", LINUX_TRIPLES)
def test_linux_binary_is_committed(triple: str) -> None:
    path = BIN / f"relay-{triple}"
    assert path.is_file(), f"{path.relative_to(REPO)} missing: run {REBUILD[triple]}"
    assert path.stat().st_mode & 0o111, f"{path.name} must be mode 755"


def test_every_binary_was_built_from_the_current_sources() -> None:
    record = source_hash.read_record()
    current = source_hash.source_hash(REPO)
    assert binaries(), "bin/ is empty"
    for path in binaries():
        triple = path.name.removeprefix("relay-")
        how = REBUILD.get(triple, "the build-binaries workflow (darwin legs)")
        assert triple in record, f"{path.name} has no entry in build/built-from.txt: run {how}"
        built_sha, built_source = record[triple]
        assert sha256(path) == built_sha, f"{path.name} was replaced outside the build: run {how}"
        assert built_source == current, (
            f"{path.name} is stale: relay/ or pyproject.toml changed since it was built; run {how}"
        )


def test_source_hash_tracks_every_source_file(tmp_path: Path) -> None:
    """The hash changes with any file under relay/ and with pyproject.toml, not with caches."""
    (tmp_path / "relay" / "__pycache__").mkdir(parents=True)
    (tmp_path / "relay" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    base = source_hash.source_hash(tmp_path)
    (tmp_path / "relay" / "__pycache__" / "a.pyc").write_bytes(b"junk")
    assert source_hash.source_hash(tmp_path) == base
    (tmp_path / "relay" / "new.py").write_text("")
    changed = source_hash.source_hash(tmp_path)
    assert changed != base
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert source_hash.source_hash(tmp_path) != changed


def test_sha256sums_covers_every_binary() -> None:
    """SHA256SUMS is `sha256sum -c` input for exactly the files in bin/, and they all match."""
    sums = REPO / "SHA256SUMS"
    assert sums.is_file(), "SHA256SUMS missing: run build/sums.sh"
    listed = {}
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    on_disk = {p.relative_to(REPO).as_posix(): sha256(p) for p in binaries()}
    assert listed == on_disk, "SHA256SUMS is out of date: run build/sums.sh"
    check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_binaries_are_plain_executable_git_blobs() -> None:
    """Mode 100755 in git, marked binary in .gitattributes, never LFS pointers."""
    attributes = (REPO / ".gitattributes").read_text()
    assert any(line.split()[:2] == ["bin/*", "binary"] for line in attributes.splitlines())
    assert "lfs" not in attributes
    for path in binaries():
        assert not path.read_bytes()[:40].startswith(b"version https://git-lfs"), path.name
    tracked = subprocess.run(
        ["git", "ls-files", "-s", "--", "bin", "launcher"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if tracked.returncode != 0:
        pytest.skip(f"not a git checkout: {tracked.stderr.strip()}")
    for line in tracked.stdout.splitlines():
        mode, _, _, name = line.split(maxsplit=3)
        assert mode == "100755", f"{name} is {mode} in git; git update-index --chmod=+x {name}"
