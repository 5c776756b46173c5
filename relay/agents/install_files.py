"""What every adapter's `relay doctor` checks read: the CLIs' config files and the plugin's
installed copies, compared file by file with the checkout relay runs from.

Read-only and bounded: a file that is missing, unreadable, too large or does not parse counts as
not there. Only doctor imports this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from relay.agents.adapter_protocol import Finding

# The plugin's name, and its marketplace's, in the clone's manifests: every CLI installs it under these.
PLUGIN = "session-relay"
MARKETPLACE = "session-relay"
PLUGIN_ID = f"{PLUGIN}@{MARKETPLACE}"

# What a plugin copy runs from: compared file by file between the checkout and an installed copy.
_RUNNING_DIRS = ("relay", "bin", "hooks", "skills", ".claude-plugin", ".codex-plugin")
_RUNNING_FILES = ("launcher", "pyproject.toml", ".codex-mcp.json", ".mcp.json", "qwen-extension.json")
_MAX_CONFIG = 4 << 20  # a settings or config file larger than this is not read


def read_small(path: Path) -> bytes | None:
    """A small regular file's bytes; None when it is missing, not a file, unreadable or too large."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG:
            return None
        return path.read_bytes()
    except OSError:
        return None


def read_json(path: Path) -> Any:
    """A small JSON file's value; None when it cannot be read or does not parse."""
    data = read_small(path)
    try:
        return json.loads(data) if data is not None else None
    except ValueError:
        return None


def table(value: Any, *keys: str) -> dict[str, Any]:
    """value[key1][key2]... when each step is an object, else {}."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def digest(path: Path) -> str:
    """A file's SHA-256, hex."""
    hashed = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hashed.update(chunk)
    return hashed.hexdigest()


def version(copy: Path) -> str:
    """A copy's version as its manifests give it (pyproject.toml, then the plugin manifests)."""
    import tomllib

    data = read_small(copy / "pyproject.toml")
    try:
        found = table(tomllib.loads(data.decode()), "project").get("version") if data else None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        found = None
    for manifest in (".claude-plugin/plugin.json", ".codex-plugin/plugin.json"):
        if not isinstance(found, str):
            value = read_json(copy / manifest)
            found = value.get("version") if isinstance(value, dict) else None
    return found if isinstance(found, str) else "unknown"


def _running_files(root: Path) -> dict[str, Path]:
    files = {name: root / name for name in _RUNNING_FILES if (root / name).is_file()}
    for top in _RUNNING_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for filename in filenames:
                if not filename.endswith(".pyc"):
                    path = Path(dirpath) / filename
                    files[path.relative_to(root).as_posix()] = path
    return files


def differing_files(checkout: Path, copy: Path) -> list[str]:
    """The plugin files (code, binary, hooks, manifests, skill) that differ between two copies."""
    mine, theirs = _running_files(checkout), _running_files(copy)
    differ = []
    for name in sorted(set(mine) | set(theirs)):
        a, b = mine.get(name), theirs.get(name)
        try:
            same = a is not None and b is not None and a.stat().st_size == b.stat().st_size and digest(a) == digest(b)
        except OSError:
            same = False
        if not same:
            differ.append(name)
    return differ


def compare(cli: str, copy: Path, root: Path, fix: str) -> Finding:
    """Does `cli` run a copy identical to the checkout `root`? WARN with `fix` when it does not."""
    differ = differing_files(root, copy)
    theirs, mine = version(copy), version(root)
    if not differ:
        return "PASS", f"{cli} runs a copy identical to this checkout (version {mine}, {copy})", ""
    shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
    versions = f"version {theirs}, this checkout's is {mine}" if theirs != mine else f"same version {mine}"
    return "WARN", f"{cli} runs another copy of {PLUGIN} ({copy}; {versions}; differs in {shown})", fix
