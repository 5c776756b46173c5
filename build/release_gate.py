"""Release gate: says whether HEAD may be tagged as a release, and if not, everything that is wrong.

    python3 build/release_gate.py [--repo DIR]

It checks the commit (HEAD), not the working tree, because a tag names a commit; a working tree that
differs from HEAD is refused too, so what was tested is what gets tagged. It refuses unless:

- all four binaries bin/relay-<triple> are committed as plain blobs with mode 100755 (not LFS pointers);
- SHA256SUMS lists every file in bin/, each digest matches the committed file, and every path it
  lists is committed (`sha256sum -c SHA256SUMS` on a fresh clone then passes);
- build/built-from.txt has a line per binary whose binary sha256 is the committed file's and whose
  source hash is build/source_hash.py's hash of HEAD's relay/ and pyproject.toml (not stale);
- the version is the same in pyproject.toml, relay/__init__.py, .claude-plugin/plugin.json, the
  plugin's entry in .claude-plugin/marketplace.json, .codex-plugin/plugin.json and
  gemini/gemini-extension.json.

Refused: one line per problem on stderr (all of them, each naming the fix), exit 1.
Accepted: one line "release gate: ok (...)" on stdout, exit 0. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# The manifests each CLI reads the plugin's version from (the Claude marketplace entry is checked apart).
PLUGIN_MANIFESTS = (".claude-plugin/plugin.json", ".codex-plugin/plugin.json", "gemini/gemini-extension.json")

HERE = Path(__file__).resolve().parent
TRIPLES = ("x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "x86_64-apple-darwin", "aarch64-apple-darwin")
WORKFLOW = "run the build-binaries workflow (Actions -> build-binaries -> Run workflow) and unpack its release-bin"
HOW_TO_BUILD = {
    "x86_64-unknown-linux-musl": "run build/build.sh on x86_64 Linux (or build/build-all.sh)",
    "aarch64-unknown-linux-musl": "run build/build-linux-aarch64.sh (or build/build-all.sh)",
    "x86_64-apple-darwin": WORKFLOW,
    "aarch64-apple-darwin": WORKFLOW,
}
SUMS = "SHA256SUMS"
BUILT_FROM = "build/built-from.txt"
SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
INIT_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class GitError(Exception):
    """git failed; the message is its stderr."""


@dataclass(frozen=True)
class Entry:
    """One file of HEAD's tree."""

    mode: str
    kind: str
    obj: str


class Head:
    """Reads HEAD's tree and blobs through git, so the gate sees what a tag would name."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.commit = self.git("rev-parse", "--verify", "HEAD^{commit}").decode().strip()
        self.tree: dict[str, Entry] = {}
        for record in self.git("ls-tree", "-r", "-z", "--full-tree", self.commit).split(b"\0"):
            if record:
                meta, _, path = record.partition(b"\t")
                mode, kind, obj = meta.decode().split()
                self.tree[path.decode()] = Entry(mode, kind, obj)

    def git(self, *args: str) -> bytes:
        try:
            done = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True, check=False)
        except OSError as e:
            raise GitError(f"cannot run git: {e}") from e
        if done.returncode != 0:
            raise GitError(done.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
        return done.stdout

    def read(self, path: str) -> bytes | None:
        """The committed content of path, or None when HEAD has no such file."""
        entry = self.tree.get(path)
        return None if entry is None or entry.kind != "blob" else self.git("cat-file", "blob", entry.obj)

    def text(self, path: str) -> str | None:
        data = self.read(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def dirty(self) -> list[str]:
        """`git status` lines for tracked changes and untracked, unignored files."""
        items = iter(
            self.git("status", "--porcelain=v1", "-z", "--untracked-files=all").decode(errors="replace").split("\0")
        )
        changes = []
        for item in items:
            if item:
                changes.append(item)
                if item[0] in "RC":
                    next(items, None)  # a rename's or copy's source path follows as its own item
        return changes


def load_source_hash() -> ModuleType:
    """build/source_hash.py, the one definition of the source hash (build/ is not a package)."""
    spec = importlib.util.spec_from_file_location("source_hash", HERE / "source_hash.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'source_hash.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def head_source_hash(head: Head) -> str:
    """build/source_hash.py's hash of HEAD's relay/ and pyproject.toml, written out to a temp dir."""
    with tempfile.TemporaryDirectory(prefix="release-gate-") as tmp:
        root = Path(tmp)
        for path, entry in head.tree.items():
            if (path.startswith("relay/") or path == "pyproject.toml") and entry.kind == "blob":
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(head.git("cat-file", "blob", entry.obj))
        if not (root / "pyproject.toml").exists():
            (root / "relay").mkdir(exist_ok=True)
            (root / "pyproject.toml").write_bytes(b"")
        return str(load_source_hash().source_hash(root))


def check_binaries(head: Head, problems: list[str]) -> dict[str, str]:
    """Each of the four binaries is a committed 100755 blob; returns path -> sha256 of those that are."""
    digests: dict[str, str] = {}
    for triple in TRIPLES:
        path = f"bin/relay-{triple}"
        entry = head.tree.get(path)
        if entry is None:
            problems.append(f"{path} is not committed: {HOW_TO_BUILD[triple]}, then commit it")
            continue
        if entry.mode != "100755":
            what = "a symlink" if entry.mode == "120000" else f"mode {entry.mode}"
            problems.append(
                f"{path} is committed as {what}, not a mode 100755 file: "
                f"chmod 755 {path} && git update-index --chmod=+x {path}, then commit"
            )
            if entry.kind != "blob" or entry.mode == "120000":
                continue
        data = head.read(path) or b""
        if data.startswith(LFS_POINTER):
            problems.append(f"{path} is committed as a Git LFS pointer, not the binary: commit the file itself")
            continue
        digests[path] = hashlib.sha256(data).hexdigest()
    return digests


def check_sums(head: Head, problems: list[str]) -> None:
    """SHA256SUMS covers exactly bin/ and every digest matches the committed file."""
    fix = "run build/sums.sh and commit SHA256SUMS"
    text = head.text(SUMS)
    if text is None:
        problems.append(f"{SUMS} is not committed: {fix}")
        return
    listed: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = SUMS_LINE.fullmatch(line)
        if match is None:
            problems.append(f"{SUMS} line {number} is not '<sha256>  <path>': {line[:80]!r}: {fix}")
            continue
        digest, path = match.group(1).lower(), match.group(2)
        listed.add(path)
        data = head.read(path)
        if data is None:
            problems.append(f"{SUMS} lists {path}, which is not committed: {fix}")
        elif hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{SUMS} does not verify {path}: listed {digest[:12]}..., committed file differs: {fix}")
    for path, entry in sorted(head.tree.items()):
        if path.startswith("bin/") and entry.kind == "blob" and path not in listed:
            problems.append(f"{SUMS} does not list {path}: {fix}")


def check_built_from(head: Head, digests: dict[str, str], problems: list[str]) -> str:
    """Each committed binary was built from HEAD's sources; returns that source hash."""
    current = head_source_hash(head)
    text = head.text(BUILT_FROM)
    if text is None:
        problems.append(f"{BUILT_FROM} is not committed: build the binaries (build/build.sh records each one)")
        return current
    record: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3:
            problems.append(f"{BUILT_FROM} line {number} is not '<triple> <binary sha256> <source hash>'")
            continue
        record[fields[0]] = (fields[1].lower(), fields[2].lower())
    for triple in TRIPLES:
        path = f"bin/relay-{triple}"
        if path not in digests:
            continue  # already reported as not committed
        how = HOW_TO_BUILD[triple]
        if triple not in record:
            problems.append(f"{BUILT_FROM} has no line for {triple}: {how}")
            continue
        built_sha, built_source = record[triple]
        if built_sha != digests[path]:
            problems.append(f"{path} is not the binary {BUILT_FROM} records (replaced outside the build?): {how}")
        if built_source != current:
            problems.append(
                f"{path} is stale: built from sources {built_source[:12]}, but HEAD's relay/ and pyproject.toml "
                f"hash to {current[:12]}: {how}"
            )
    return current


def found_versions(head: Head, problems: list[str]) -> list[tuple[str, str]]:
    """(file, version) for every place the version is written; a file without one is a problem."""
    found: list[tuple[str, str]] = []

    def missing(path: str, what: str) -> None:
        problems.append(f"{path}: {what}, so its version cannot be checked")

    text = head.text("pyproject.toml")
    try:
        project = tomllib.loads(text).get("project", {}) if text is not None else None
    except tomllib.TOMLDecodeError as e:
        project = None
        missing("pyproject.toml", f"not valid TOML ({e})")
    if text is None:
        missing("pyproject.toml", "not committed")
    elif isinstance(project, dict) and isinstance(project.get("version"), str):
        found.append(("pyproject.toml", project["version"]))
    elif project is not None:
        missing("pyproject.toml", "no [project] version")

    init = "relay/__init__.py"
    text = head.text(init)
    match = INIT_VERSION.search(text) if text is not None else None
    if match is None:
        missing(init, "no __version__ = '...' line" if text is not None else "not committed")
    else:
        found.append((init, match.group(1)))

    manifests: dict[str, object] = {}
    for path in (*PLUGIN_MANIFESTS[:1], ".claude-plugin/marketplace.json", *PLUGIN_MANIFESTS[1:]):
        text = head.text(path)
        if text is None:
            missing(path, "not committed")
            continue
        try:
            manifests[path] = json.loads(text)
        except ValueError as e:
            missing(path, f"not valid JSON ({e})")
    for path in PLUGIN_MANIFESTS:
        data = manifests.get(path)
        if isinstance(data, dict):
            if isinstance(data.get("version"), str):
                found.append((path, data["version"]))
            else:
                missing(path, 'no "version"')
    market = manifests.get(".claude-plugin/marketplace.json")
    plugin = manifests.get(".claude-plugin/plugin.json")
    if isinstance(market, dict):
        name = plugin.get("name") if isinstance(plugin, dict) else "session-relay"
        entries = [e for e in market.get("plugins", []) if isinstance(e, dict) and e.get("name") == name]
        if not entries:
            missing(".claude-plugin/marketplace.json", f"no plugin entry named {name!r}")
        for entry in entries:
            if "version" in entry:  # optional in a marketplace entry; when written it must agree
                found.append((".claude-plugin/marketplace.json", str(entry["version"])))
    return found


def check_versions(head: Head, problems: list[str]) -> str | None:
    """Every version agrees with pyproject.toml's (the first one found when it has none)."""
    found = found_versions(head, problems)
    if not found:
        return None
    reference_file, reference = found[0]
    for path, version in found[1:]:
        if version != reference:
            problems.append(f"version mismatch: {path} says {version}, {reference_file} says {reference}")
    return reference


def check_clean(head: Head, problems: list[str]) -> None:
    """The working tree is HEAD: what was built and tested is what the tag names."""
    changes = head.dirty()
    if changes:
        shown = ", ".join(c.strip() for c in changes[:5]) + (
            f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        )
        problems.append(f"the working tree differs from HEAD ({shown}): commit or stash, then run the gate again")


def gate(repo: Path) -> tuple[list[str], str]:
    """All problems (empty: releasable) and, when there are none, the summary for the ok line."""
    problems: list[str] = []
    try:
        head = Head(repo)
    except GitError as e:
        return [f"{repo} is not a git checkout with a commit: {e}"], ""
    try:
        digests = check_binaries(head, problems)
        check_sums(head, problems)
        source = check_built_from(head, digests, problems)
        version = check_versions(head, problems)
        check_clean(head, problems)
    except GitError as e:
        problems.append(f"git failed: {e}")
        return problems, ""
    summary = (
        f"version {version} at {head.commit[:12]}: {len(digests)} binaries mode 100755, {SUMS} verifies, "
        f"all built from sources {source[:12]}"
    )
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build/release_gate.py",
        description="Refuse (exit 1, one line per problem on stderr) unless HEAD is releasable.",
        epilog="Checks HEAD: the four bin/ binaries (mode 100755), SHA256SUMS, build/built-from.txt against "
        "the sources, the versions in pyproject.toml, relay/__init__.py and the plugin manifests, and a clean "
        "working tree. Example: python3 build/release_gate.py && git tag -a v0.2.0 -m 'session-relay 0.2.0'",
    )
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="checkout to check (default: %(default)s)")
    args = parser.parse_args(argv)
    problems, summary = gate(args.repo)
    if problems:
        for problem in problems:
            print(f"release gate: {problem}", file=sys.stderr)
        return 1
    print(f"release gate: ok ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
