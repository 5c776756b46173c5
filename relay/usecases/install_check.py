"""`relay doctor`'s installation checks: is the plugin installed so that it can work?

The store can be healthy while the relay still does nothing for a session, silently: Codex holds
the plugin's hooks for review until the user trusts them (so no Codex session is ever
registered), a settings file can deny the tools a woken Claude needs, a CLI can run an old copy of
the plugin, and a checkout's binary can predate its sources. Each agent CLI's adapter
(relay.agents) checks its own install; this module asks each in turn, then checks the binary.
Every check reads files only and returns (status, words, fix command or "").
"""

from __future__ import annotations

import os
from pathlib import Path
from shlex import quote

from relay.util.env import launcher_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from relay.agents.adapter_protocol import Finding
    from relay.store.contract import StoreAPI


def installation(store: StoreAPI) -> list[Finding]:
    """Every installation check: each CLI's (relay.agents), then the binary's."""
    from relay.agents import adapters

    root = plugin_root()
    found: list[Finding] = []
    for agent in adapters():
        found += agent.doctor_findings(store, root)
    found += binary_freshness(root)
    return found


def plugin_root() -> Path | None:
    """The plugin this relay runs from: the launcher's dir (RELAY_LAUNCHER), else the package's parent."""
    import relay

    launcher = launcher_path()
    candidates = [os.path.dirname(launcher)] if launcher else []
    candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(relay.__file__))))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "launcher")):
            return Path(os.path.realpath(candidate))
    return None


# -- is the checkout's binary built from its sources? --------------------------------------------


def platform_triple() -> str | None:
    """This machine's bin/ name suffix, as the launcher picks it (None where no binary is built)."""
    uname = os.uname()
    cpu = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(uname.machine)
    system = {"Linux": "unknown-linux-musl", "Darwin": "apple-darwin"}.get(uname.sysname)
    return f"{cpu}-{system}" if cpu and system else None


def binary_freshness(root: Path | None) -> list[Finding]:
    """In a source checkout: was bin/relay-<this platform> built from the current sources?"""
    if (
        root is None
        or not (root / "relay" / "__main__.py").is_file()
        or not (root / "build" / "source_hash.py").is_file()
    ):
        return [("PASS", "binary: no sources here to compare it with (an installed copy)", "")]
    triple = platform_triple()
    if triple is None:
        return [("PASS", f"binary: none is built for this platform ({os.uname().sysname} {os.uname().machine})", "")]
    script = "build/build-all.sh" if triple.endswith("linux-musl") else "build/build.sh"
    fix = f"cd {quote(str(root))} && sh {script}"
    binary = root / "bin" / f"relay-{triple}"
    try:
        from relay.agents.install_files import digest
        from relay.util.source_hash import RECORD_NAME, read_record, source_hash

        recorded = read_record(root / RECORD_NAME).get(triple)
        current = source_hash(root)
    except (OSError, ValueError) as err:
        return [("WARN", f"binary: cannot tell what bin/relay-{triple} was built from ({err})", fix)]
    if not binary.is_file():
        return [("WARN", f"binary: bin/relay-{triple} is missing; the launcher runs the sources with python3", fix)]
    if recorded is None:
        return [("WARN", f"binary: build/built-from.txt has no record of bin/relay-{triple}", fix)]
    if digest(binary) != recorded[0]:
        return [("WARN", f"binary: bin/relay-{triple} is not the one build/built-from.txt records", fix)]
    if recorded[1] != current:
        return [
            ("WARN", f"binary: bin/relay-{triple} was built from other sources than relay/ and pyproject.toml now", fix)
        ]
    return [("PASS", f"binary: bin/relay-{triple} was built from the current sources", "")]
