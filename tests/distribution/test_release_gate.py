"""build/release_gate.py refuses a release for every way bin/, SHA256SUMS, build/built-from.txt and the
versions can disagree, names each problem, reports all of them at once, and accepts a consistent commit.

Each test builds a throwaway git repository from this checkout's sources and manifests plus small fake
binaries (the gate checks hashes, modes and records, not ELF), breaks one thing, commits, and runs the
gate on it with --repo, as a maintainer would run it before tagging.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from binary_support import ALL_TRIPLES, REPO, load_source_hash

GATE = REPO / "build" / "release_gate.py"
DARWIN = ("x86_64-apple-darwin", "aarch64-apple-darwin")
VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
assert VERSION, "pyproject.toml has no version line"
CURRENT = VERSION.group(1)
# Where each file writes the version, as text to replace (the gate parses them; the tests edit them).
VERSION_TEXT = {
    "pyproject.toml": f'version = "{CURRENT}"',
    "relay/__init__.py": f'__version__ = "{CURRENT}"',
    ".claude-plugin/plugin.json": f'"version": "{CURRENT}"',
    ".claude-plugin/marketplace.json": f'"version": "{CURRENT}"',
    ".codex-plugin/plugin.json": f'"version": "{CURRENT}"',
    "gemini/gemini-extension.json": f'"version": "{CURRENT}"',
}
# No user or system git config (signing, hooks, autocrlf) may change what the throwaway repos hold.
GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=gate test", "-c", "user.email=gate@example.invalid", *args],
        cwd=repo,
        env=GIT_ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sums(repo: Path) -> None:
    """What build/sums.sh writes: `sha256sum bin/*`."""
    lines = [f"{sha256(p)}  bin/{p.name}\n" for p in sorted((repo / "bin").iterdir())]
    (repo / "SHA256SUMS").write_text("".join(lines))


def record_builds(repo: Path) -> None:
    """What the build writes to build/built-from.txt: every binary built from the current sources."""
    source = load_source_hash().source_hash(repo)
    lines = ["# <triple> <sha256 of bin/relay-<triple>> <source hash> (build/source_hash.py)\n"]
    lines += [f"{t} {sha256(repo / 'bin' / f'relay-{t}')} {source}\n" for t in sorted(ALL_TRIPLES)]
    (repo / "build" / "built-from.txt").write_text("".join(lines))


def commit(repo: Path, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed, fully consistent release: this checkout's sources and manifests, four fake binaries."""
    root = tmp_path / "release"
    shutil.copytree(REPO / "relay", root / "relay", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in (
        "pyproject.toml",
        ".claude-plugin/plugin.json",
        ".claude-plugin/marketplace.json",
        "gemini/gemini-extension.json",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    (root / ".codex-plugin").mkdir()
    shutil.copy(REPO / ".codex-plugin" / "plugin.json", root / ".codex-plugin" / "plugin.json")
    (root / "bin").mkdir()
    (root / "build").mkdir()
    for triple in ALL_TRIPLES:
        binary = root / "bin" / f"relay-{triple}"
        binary.write_bytes(f"fake relay binary for {triple}\n".encode() + os.urandom(64))
        binary.chmod(0o755)
    write_sums(root)
    record_builds(root)
    git(root, "init", "-q")
    commit(root, "release")
    return root


def run_gate(repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GATE), "--repo", str(repo)], capture_output=True, text=True, env=env or GIT_ENV
    )


def refusals(repo: Path) -> list[str]:
    """The gate's problem lines; it must have refused (exit 1) with nothing on stdout."""
    done = run_gate(repo)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("release gate: ") for line in lines), done.stderr
    return lines


def only(lines: list[str], *words: str) -> str:
    """The single problem line naming all of words."""
    hits = [line for line in lines if all(word in line for word in words)]
    assert len(hits) == 1, (words, lines)
    return hits[0]


def test_a_consistent_release_passes(repo: Path) -> None:
    done = run_gate(repo)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    head = git(repo, "rev-parse", "HEAD").strip()
    [line] = done.stdout.splitlines()
    assert line.startswith("release gate: ok (")
    assert f"version {CURRENT}" in line and head[:12] in line and "4 binaries" in line


@pytest.mark.parametrize("triple", ALL_TRIPLES)
def test_a_missing_binary_is_named(repo: Path, triple: str) -> None:
    path = f"bin/relay-{triple}"
    git(repo, "rm", "-q", path)
    write_sums(repo)
    commit(repo)
    lines = refusals(repo)
    assert only(lines, f"{path} is not committed")
    assert len(lines) == 1, lines


def test_sha256sums_listing_a_file_that_is_not_committed(repo: Path) -> None:
    git(repo, "rm", "-q", "bin/relay-aarch64-apple-darwin")
    commit(repo)  # SHA256SUMS still lists it
    lines = refusals(repo)
    only(lines, "bin/relay-aarch64-apple-darwin is not committed")
    only(lines, "SHA256SUMS lists bin/relay-aarch64-apple-darwin, which is not committed")
    assert len(lines) == 2, lines


def test_mode_100644_is_refused(repo: Path) -> None:
    (repo / "bin" / "relay-x86_64-apple-darwin").chmod(0o644)
    commit(repo)
    lines = refusals(repo)
    line = only(lines, "bin/relay-x86_64-apple-darwin", "100644")
    assert "git update-index --chmod=+x" in line
    assert len(lines) == 1, lines


def test_a_symlink_in_place_of_a_binary_is_refused(repo: Path) -> None:
    path = repo / "bin" / "relay-x86_64-unknown-linux-musl"
    path.unlink()
    path.symlink_to("relay-aarch64-unknown-linux-musl")
    commit(repo)
    assert only(refusals(repo), "bin/relay-x86_64-unknown-linux-musl", "symlink")


def test_an_lfs_pointer_in_place_of_a_binary_is_refused(repo: Path) -> None:
    path = repo / "bin" / "relay-aarch64-unknown-linux-musl"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 1\n")
    write_sums(repo)
    record_builds(repo)
    commit(repo)
    lines = refusals(repo)
    assert only(lines, "bin/relay-aarch64-unknown-linux-musl", "LFS pointer")
    assert len(lines) == 1, lines


def test_a_sum_that_does_not_verify_is_named(repo: Path) -> None:
    sums = repo / "SHA256SUMS"
    digest = sha256(repo / "bin" / "relay-aarch64-apple-darwin")
    sums.write_text(sums.read_text().replace(digest, hashlib.sha256(b"something else").hexdigest()))
    commit(repo)
    lines = refusals(repo)
    assert "does not verify" in only(lines, "SHA256SUMS", "bin/relay-aarch64-apple-darwin")
    assert len(lines) == 1, lines


@pytest.mark.parametrize("triple", ALL_TRIPLES)
def test_a_binary_missing_from_sha256sums_is_named(repo: Path, triple: str) -> None:
    sums = repo / "SHA256SUMS"
    sums.write_text("".join(line for line in sums.read_text().splitlines(True) if f"relay-{triple}" not in line))
    commit(repo)
    lines = refusals(repo)
    assert only(lines, f"SHA256SUMS does not list bin/relay-{triple}")
    assert len(lines) == 1, lines


def test_a_malformed_sums_line_is_named(repo: Path) -> None:
    sums = repo / "SHA256SUMS"
    sums.write_text(sums.read_text() + "not a checksum line\n")
    commit(repo)
    lines = refusals(repo)
    assert only(lines, "SHA256SUMS line 5")
    assert len(lines) == 1, lines


def test_stale_built_from_names_every_binary(repo: Path) -> None:
    """Editing relay/ after the build makes every binary stale, even though nothing in bin/ changed."""
    init = repo / "relay" / "__init__.py"
    init.write_text(init.read_text() + "# edited after the build\n")
    commit(repo)
    lines = refusals(repo)
    for triple in ALL_TRIPLES:
        assert only(lines, f"bin/relay-{triple} is stale")
    assert len(lines) == 4, lines


def test_a_binary_replaced_outside_the_build_is_named(repo: Path) -> None:
    (repo / "bin" / "relay-x86_64-unknown-linux-musl").write_bytes(b"hand-copied binary\n")
    write_sums(repo)  # the sums are refreshed, the build record is not
    commit(repo)
    lines = refusals(repo)
    assert "replaced outside the build" in only(lines, "bin/relay-x86_64-unknown-linux-musl")
    assert len(lines) == 1, lines


def test_a_binary_without_a_built_from_line_is_named(repo: Path) -> None:
    record = repo / "build" / "built-from.txt"
    record.write_text("".join(line for line in record.read_text().splitlines(True) if "x86_64-apple" not in line))
    commit(repo)
    lines = refusals(repo)
    assert only(lines, "built-from.txt has no line for x86_64-apple-darwin")
    assert len(lines) == 1, lines


@pytest.mark.parametrize("path", sorted(VERSION_TEXT))
def test_a_version_disagreement_names_the_file(repo: Path, path: str) -> None:
    file = repo / path
    text = file.read_text()
    assert text.count(VERSION_TEXT[path]) == 1, f"{path} no longer writes {VERSION_TEXT[path]!r}"
    file.write_text(text.replace(VERSION_TEXT[path], VERSION_TEXT[path].replace(CURRENT, "9.9.9")))
    record_builds(repo)  # a release build of the edited sources: only the versions are wrong
    commit(repo)
    lines = refusals(repo)
    assert all("version mismatch" in line for line in lines), lines
    assert all(path in line and "9.9.9" in line for line in lines), lines
    # pyproject.toml is the reference: changing it puts all the others out of step.
    assert len(lines) == (len(VERSION_TEXT) - 1 if path == "pyproject.toml" else 1), lines


def test_a_file_without_a_version_is_named(repo: Path) -> None:
    init = repo / "relay" / "__init__.py"
    init.write_text(init.read_text().replace(VERSION_TEXT["relay/__init__.py"], "VERSION = None"))
    record_builds(repo)
    commit(repo)
    lines = refusals(repo)
    assert "no __version__" in only(lines, "relay/__init__.py")
    assert len(lines) == 1, lines


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    git(repo, "rm", "-q", "bin/relay-x86_64-apple-darwin", "bin/relay-aarch64-apple-darwin")
    (repo / "bin" / "relay-aarch64-unknown-linux-musl").chmod(0o644)
    codex = repo / ".codex-plugin" / "plugin.json"
    codex.write_text(codex.read_text().replace(f'"version": "{CURRENT}"', '"version": "0.0.1"'))
    init = repo / "relay" / "__init__.py"
    init.write_text(init.read_text() + "# edited after the build\n")
    commit(repo)
    lines = refusals(repo)
    only(lines, "bin/relay-x86_64-apple-darwin is not committed")
    only(lines, "bin/relay-aarch64-apple-darwin is not committed")
    only(lines, "SHA256SUMS lists bin/relay-x86_64-apple-darwin")
    only(lines, "SHA256SUMS lists bin/relay-aarch64-apple-darwin")
    only(lines, "bin/relay-aarch64-unknown-linux-musl", "100644")
    only(lines, "bin/relay-aarch64-unknown-linux-musl is stale")
    only(lines, "bin/relay-x86_64-unknown-linux-musl is stale")
    only(lines, "version mismatch", ".codex-plugin/plugin.json", "0.0.1")
    assert len(lines) == 8, lines


def test_the_gate_checks_the_commit_and_refuses_a_dirty_tree(repo: Path) -> None:
    """A binary fixed on disk but not committed is still wrong in the commit a tag would name."""
    binary = repo / "bin" / "relay-x86_64-apple-darwin"
    binary.chmod(0o644)
    commit(repo)
    binary.chmod(0o755)
    (repo / "notes.txt").write_text("scratch\n")
    lines = refusals(repo)
    only(lines, "bin/relay-x86_64-apple-darwin", "100644")
    dirty = only(lines, "working tree differs from HEAD")
    assert "bin/relay-x86_64-apple-darwin" in dirty and "notes.txt" in dirty
    assert len(lines) == 2, lines
    commit(repo)
    assert run_gate(repo).returncode == 0


def test_a_directory_that_is_not_a_checkout_is_refused(tmp_path: Path) -> None:
    lines = refusals(tmp_path)
    assert len(lines) == 1 and "not a git checkout" in lines[0], lines


def test_this_checkout_is_refused_for_each_binary_it_lacks() -> None:
    """The real repository: every one of the four binaries its HEAD lacks (today the two darwin ones,
    which only the build-binaries workflow can build) is named, and the release is refused."""
    done = run_gate(REPO, env=dict(os.environ))  # the caller's git config (e.g. safe.directory in CI)
    assert "not a git checkout" not in done.stderr, done.stderr
    tracked = set(
        subprocess.run(
            ["git", "ls-tree", "--name-only", "HEAD", "bin/"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    missing = [t for t in ALL_TRIPLES if f"bin/relay-{t}" not in tracked]
    lines = done.stderr.splitlines()
    for triple in ALL_TRIPLES:
        named = [line for line in lines if f"bin/relay-{triple} is not committed" in line]
        assert len(named) == (1 if triple in missing else 0), (triple, lines)
    if missing:
        assert done.returncode == 1 and done.stdout == "", (done.stdout, done.stderr)
    if set(DARWIN) <= set(missing):
        assert all("build-binaries workflow" in line for line in lines if "apple-darwin is not committed" in line)
