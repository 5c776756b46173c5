"""The frozen build drops annotations from relay's compiled modules (build/relay.nuitka-package.config.yml,
docs/startup.md). A class that needs its annotations at run time - a typing.NamedTuple, a TypedDict,
a dataclass - would lose its fields there while every test on the sources passed, so each module
defining one must be listed in that file with its annotations kept."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "build" / "relay.nuitka-package.config.yml"
# Bases and decorators whose classes read their own annotations when they are created.
NEEDS_ANNOTATIONS = {"NamedTuple", "TypedDict", "dataclass"}


def _entries() -> dict[str, str]:
    """module -> its `annotations` setting, from the build's package configuration."""
    entries: dict[str, str] = {}
    module = None
    for line in CONFIG.read_text().splitlines():
        if found := re.match(r"- module-name: '([\w.]+)'", line):
            module = found.group(1)
        elif (found := re.match(r"\s+annotations: '(yes|no)'", line)) and module:
            entries[module] = found.group(1)
    return entries


def _names(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _modules_needing_annotations() -> set[str]:
    found = set()
    for path in (REPO / "relay").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                used = set().union(*(_names(e) for e in [*node.bases, *node.decorator_list]))
                if used & NEEDS_ANNOTATIONS:
                    found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_the_build_drops_relays_annotations():
    assert _entries().get("relay") == "no"


def test_every_module_whose_classes_need_annotations_keeps_them():
    entries = _entries()
    needing = _modules_needing_annotations()
    assert "relay.store.redis_reads" in needing  # the scan sees the one there is (Row, a NamedTuple)
    assert sorted(m for m in needing if entries.get(m) != "yes") == []
