"""`relay doctor`'s installation checks: is the plugin installed so that it can work?

The store can be healthy while the relay still does nothing for a session, silently: Codex holds
the plugin's hooks for review until the user trusts them (so no Codex session is ever
registered), a settings file can deny the tools a woken Claude needs, a CLI can run an old copy of
the plugin (Codex runs its cache until `codex plugin add` again; Claude runs a local-clone
marketplace straight from the clone), and a checkout's binary can predate its sources. Each
check reads files only (the CLIs' config, the plugin copies, build/built-from.txt) and returns
(status, words, fix command or "").
"""

from __future__ import annotations

import hashlib
import json
import os
from fnmatch import fnmatchcase
from pathlib import Path
from shlex import join, quote

from relay.domain.bus_tools import SERVER as BUS_SERVER
from relay.util.env import usable_env
from relay.util.errors import RelayError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from relay.store.contract import StoreAPI

    Finding = tuple[str, str, str]

PLUGIN = "session-relay"
MARKETPLACE = "session-relay"
PLUGIN_ID = f"{PLUGIN}@{MARKETPLACE}"
# Claude names a plugin's MCP tools mcp__plugin_<plugin>_<server>__<tool>; the plugin's server is `bus`.
CLAUDE_SERVER = f"mcp__plugin_{PLUGIN}_{BUS_SERVER}"  # relay.agents.claude.BUS_RULE
TRUST_HOOKS = 'type /hooks and choose "Trust all and continue"'
# What a plugin copy runs from: compared file by file between the checkout and an installed copy.
_RUNNING_DIRS = ("relay", "bin", "hooks", "skills", ".claude-plugin", ".codex-plugin")
_RUNNING_FILES = ("launcher", "pyproject.toml", ".codex-mcp.json", ".mcp.json")
_MAX_CONFIG = 4 << 20  # a settings or config file larger than this is not read


def installation(store: StoreAPI) -> list[Finding]:
    """Every installation check, in the order a user fixes them."""
    root = plugin_root()
    found = codex_hook_trust()
    found += woken_claude_tools(store)
    found += claude_copy(root)
    found += codex_copy(root)
    found += binary_freshness(root)
    return found


# -- where things are --------------------------------------------------------------------------


def plugin_root() -> Path | None:
    """The plugin this relay runs from: the launcher's dir (RELAY_LAUNCHER), else the package's parent."""
    import relay

    launcher = usable_env("RELAY_LAUNCHER")
    candidates = [os.path.dirname(launcher)] if launcher else []
    candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(relay.__file__))))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "launcher")):
            return Path(os.path.realpath(candidate))
    return None


def codex_home() -> Path:
    """$CODEX_HOME, else ~/.codex."""
    return Path(usable_env("CODEX_HOME") or os.path.expanduser("~/.codex"))


def claude_config_dir() -> Path:
    """$CLAUDE_CONFIG_DIR, else ~/.claude."""
    return Path(usable_env("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude"))


def _read(path: Path) -> bytes | None:
    """A small regular file's bytes; None when it is missing, not a file, unreadable or too large."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _json(path: Path) -> Any:
    data = _read(path)
    try:
        return json.loads(data) if data is not None else None
    except ValueError:
        return None


def _codex_config() -> tuple[dict[str, Any] | None, str]:
    """Codex's config.toml as a dict ({} when there is none), or None and why it cannot be read."""
    import tomllib

    path = codex_home() / "config.toml"
    if not path.exists():
        return {}, ""
    data = _read(path)
    if data is None:
        return None, "cannot be read"
    try:
        return tomllib.loads(data.decode("utf-8")), ""
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        return None, f"does not parse ({err})"


def _table(value: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def codex_cached_copy() -> Path | None:
    """The copy Codex runs: $CODEX_HOME/plugins/cache/<marketplace>/<plugin>/<version>/ (newest)."""
    versions = codex_home() / "plugins" / "cache" / MARKETPLACE / PLUGIN
    try:
        copies = [entry for entry in versions.iterdir() if entry.is_dir()]
    except OSError:
        return None
    return max(copies, key=lambda entry: entry.stat().st_mtime, default=None)


# -- (a) Codex hook trust -----------------------------------------------------------------------


def _snake(event: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(event))


def codex_hook_keys(copy: Path) -> list[str]:
    """The keys under which Codex 0.169 records trust in config.toml's [hooks.state] for a plugin
    copy's hooks: `<plugin id>:<hooks file>:<event in snake case>:<group>:<handler>`."""
    manifest = _json(copy / ".codex-plugin" / "plugin.json")
    hooks_file = manifest.get("hooks") if isinstance(manifest, dict) else None
    if not isinstance(hooks_file, str):
        return []
    relative = os.path.normpath(hooks_file).replace(os.sep, "/")
    events = _table(_json(copy / relative), "hooks")
    keys = []
    for event, groups in events.items():
        for g, group in enumerate(groups if isinstance(groups, list) else []):
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for h, _ in enumerate(handlers if isinstance(handlers, list) else []):
                keys.append(f"{PLUGIN_ID}:{relative}:{_snake(event)}:{g}:{h}")
    return keys


def codex_hook_trust() -> list[Finding]:
    """Are the plugin's Codex hooks trusted? Untrusted, Codex never runs them: no session registers."""
    config, why = _codex_config()
    path = codex_home() / "config.toml"
    if config is None:
        return [("WARN", f"Codex hooks: {path} {why}, so their trust is unknown", "")]
    entry = _table(config, "plugins").get(PLUGIN_ID)
    copy = codex_cached_copy()
    if entry is None and copy is None:
        return [("PASS", f"Codex hooks: {PLUGIN} is not installed in Codex ({codex_home()}), nothing to trust", "")]
    if isinstance(entry, dict) and entry.get("enabled") is False:
        return [("WARN", f'Codex hooks: {PLUGIN} is disabled in {path} ([plugins."{PLUGIN_ID}"] enabled = false)', "")]
    if copy is None:
        return [
            ("WARN", f"Codex hooks: Codex's copy of {PLUGIN} is missing from {codex_home()}", _codex_reinstall(None))
        ]
    keys = codex_hook_keys(copy)
    if not keys:
        return [("WARN", f"Codex hooks: no hooks found in Codex's copy of {PLUGIN} ({copy})", _codex_reinstall(None))]
    states = _table(config, "hooks", "state")
    untrusted = [
        key.split(":")[2]
        for key in keys
        if not isinstance(states.get(key), dict)
        or not states[key].get("trusted_hash")
        or states[key].get("enabled") is False
    ]
    if untrusted:
        what = "none" if len(untrusted) == len(keys) else f"{len(keys) - len(untrusted)} of {len(keys)}"
        return [
            (
                "FAIL",
                f"Codex hooks: {what} of {PLUGIN}'s hooks are trusted in {path} (not: {', '.join(untrusted)}); Codex "
                f"skips untrusted hooks, so its sessions are not registered and get no mail; run codex, {TRUST_HOOKS}",
                "codex",
            )
        ]
    return [("PASS", f"Codex hooks: all {len(keys)} of {PLUGIN}'s hooks are trusted in {path}", "")]


# -- (b) a woken Claude's permission to use the relay's tools ------------------------------------


def _bus_tools() -> list[str]:
    from relay.domain.bus_tools import TOOL_NAMES

    return [f"{CLAUDE_SERVER}__{name}" for name in TOOL_NAMES]


def _rule_covers(rule: str, tool: str) -> bool:
    """Does a Claude permission rule name this MCP tool (the server, the tool, or a wildcard)?"""
    return rule == CLAUDE_SERVER or fnmatchcase(tool, rule)


def _edit_list(path: Path, key: str, rule: str, add: bool) -> str:
    """A command that adds (or removes) `rule` in `key` ("allow"/"deny") of a settings file's permissions."""
    change = "l.append(r) if r not in l else None" if add else "l.remove(r) if r in l else None"
    script = (
        "import json,os,sys;p,r=sys.argv[1],sys.argv[2];"
        "d=json.load(open(p)) if os.path.exists(p) else {};"
        f"l=d.setdefault('permissions',{{}}).setdefault('{key}',[]);{change};"
        "json.dump(d,open(p,'w'),indent=2)"
    )
    return join(["python3", "-c", script, str(path), rule])


def _claude_settings_files(store: StoreAPI) -> list[Path]:
    """The settings a woken Claude reads: the user's, and the project settings of every registered
    Claude session's dir (it wakes there) and of the current dir."""
    dirs = {os.getcwd()}
    # The file store reads a corrupt registry without moving it aside; another store's registry() is read-only.
    read = getattr(store, "registry_as_is", store.registry)
    try:
        for entry in read().agents.values():
            directory = entry.get("dir")
            if entry.get("tool") == "claude" and isinstance(directory, str) and directory.startswith("/"):
                dirs.add(directory)
    except (RelayError, OSError):  # the store's facts report what is wrong with it; here it only narrows the look
        pass
    files = [claude_config_dir() / "settings.json"]
    for directory in sorted(dirs):
        files += [Path(directory) / ".claude" / "settings.json", Path(directory) / ".claude" / "settings.local.json"]
    return files


def woken_claude_tools(store: StoreAPI) -> list[Finding]:
    """Will `relay wake` give a resumed Claude the bus tools (inbox to read, send to answer)?"""
    from relay.usecases.doorbell import command

    argv = command("claude", "00000000-0000-4000-8000-000000000000")
    allowed: list[str] = []
    for i, word in enumerate(argv[:-1]):
        if word in ("--allowedTools", "--allowed-tools"):
            allowed += argv[i + 1].replace(",", " ").split()
    tools = _bus_tools()
    found: list[Finding] = []
    if not all(any(_rule_covers(rule, tool) for rule in allowed) for tool in tools):
        user = claude_config_dir() / "settings.json"
        found.append(
            (
                "WARN",
                f"woken Claude: the wake command does not allow {CLAUDE_SERVER}: `claude -p` denies MCP tools "
                "nobody allowed, so a woken session cannot read its mail",
                _edit_list(user, "allow", CLAUDE_SERVER, add=True),
            )
        )
    files = _claude_settings_files(store)
    for path in files:
        settings = _json(path)
        if not isinstance(settings, dict):
            continue
        deny = _table(settings, "permissions").get("deny")
        for rule in deny if isinstance(deny, list) else []:
            if isinstance(rule, str) and any(_rule_covers(rule, tool) for tool in tools):
                found.append(
                    (
                        "WARN",
                        f"woken Claude: {path} denies {rule!r}, which wins over the wake's --allowedTools: "
                        "Claude does not even offer a woken session the tools it names",
                        _edit_list(path, "deny", rule, add=False),
                    )
                )
        if path == files[0] and _table(settings, "enabledPlugins").get(PLUGIN_ID) is False:
            found.append(
                (
                    "WARN",
                    f"Claude Code: {PLUGIN} is disabled in {path}: no hook, no bus tools",
                    join(["claude", "plugin", "enable", PLUGIN_ID]),
                )
            )
    if not found:
        found.append(
            (
                "PASS",
                f"woken Claude: the wake runs `claude -p --allowedTools {' '.join(allowed)}` and none of "
                f"{len(files)} settings file(s) denies the relay's tools",
                "",
            )
        )
    return found


# -- (c) are the installed copies this checkout? -------------------------------------------------


def _version(copy: Path) -> str:
    """A copy's version as its manifests give it (pyproject.toml, then the plugin manifests)."""
    import tomllib

    data = _read(copy / "pyproject.toml")
    try:
        version = _table(tomllib.loads(data.decode()), "project").get("version") if data else None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        version = None
    for manifest in (".claude-plugin/plugin.json", ".codex-plugin/plugin.json"):
        if not isinstance(version, str):
            value = _json(copy / manifest)
            version = value.get("version") if isinstance(value, dict) else None
    return version if isinstance(version, str) else "unknown"


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


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def differing_files(checkout: Path, copy: Path) -> list[str]:
    """The plugin files (code, binary, hooks, manifests, skill) that differ between two copies."""
    mine, theirs = _running_files(checkout), _running_files(copy)
    differ = []
    for name in sorted(set(mine) | set(theirs)):
        a, b = mine.get(name), theirs.get(name)
        try:
            same = a is not None and b is not None and a.stat().st_size == b.stat().st_size and _digest(a) == _digest(b)
        except OSError:
            same = False
        if not same:
            differ.append(name)
    return differ


def _compare(cli: str, copy: Path, root: Path, fix: str) -> Finding:
    differ = differing_files(root, copy)
    theirs, mine = _version(copy), _version(root)
    if not differ:
        return "PASS", f"{cli} runs a copy identical to this checkout (version {mine}, {copy})", ""
    shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
    version = f"version {theirs}, this checkout's is {mine}" if theirs != mine else f"same version {mine}"
    return "WARN", f"{cli} runs another copy of {PLUGIN} ({copy}; {version}; differs in {shown})", fix


def claude_copy(root: Path | None) -> list[Finding]:
    """Does Claude Code run this checkout? A marketplace added from a local clone runs the clone itself."""
    config = claude_config_dir()
    installed = _table(_json(config / "plugins" / "installed_plugins.json"), "plugins").get(PLUGIN_ID)
    if not isinstance(installed, list) or not installed:
        return [("PASS", f"Claude Code: {PLUGIN} is not installed ({config}), nothing to compare", "")]
    if root is None:
        return [("PASS", "Claude Code: this relay runs without a plugin dir, nothing to compare", "")]
    market = _table(_json(config / "plugins" / "known_marketplaces.json"), MARKETPLACE)
    source = _table(market, "source")
    reinstall = [["claude", "plugin", "marketplace", "update", MARKETPLACE], ["claude", "plugin", "update", PLUGIN_ID]]
    if source.get("source") == "directory" and isinstance(market.get("installLocation") or source.get("path"), str):
        copy = Path(market.get("installLocation") or source["path"]) / _marketplace_plugin_dir(
            Path(market.get("installLocation") or source["path"])
        )
        reinstall = [
            ["claude", "plugin", "marketplace", "remove", MARKETPLACE],
            ["claude", "plugin", "marketplace", "add", str(root)],
            ["claude", "plugin", "install", PLUGIN_ID],
        ]
    else:
        entry = installed[0] if isinstance(installed[0], dict) else {}
        copy = Path(str(entry.get("installPath") or ""))
    fix = " && ".join(join(words) for words in reinstall)
    if os.path.realpath(copy) == str(root):
        return [("PASS", f"Claude Code runs this checkout itself ({root}, version {_version(root)})", "")]
    if not copy.is_dir():
        return [("WARN", f"Claude Code's copy of {PLUGIN} is missing ({copy})", fix)]
    return [_compare("Claude Code", copy, root, fix)]


def _marketplace_plugin_dir(marketplace: Path) -> str:
    """Where, inside a local marketplace, the plugin lives (its `source`; "./" for this repo)."""
    listing = _json(marketplace / ".claude-plugin" / "marketplace.json")
    for plugin in listing.get("plugins", []) if isinstance(listing, dict) else []:
        if isinstance(plugin, dict) and plugin.get("name") == PLUGIN and isinstance(plugin.get("source"), str):
            return plugin["source"]
    return "."


def _codex_reinstall(root: Path | None) -> str:
    """Codex copies the plugin into its cache at `codex plugin add`; adding it again refreshes the copy."""
    config, _ = _codex_config()
    source = _table(config or {}, "marketplaces", MARKETPLACE).get("source")
    steps = []
    if root is not None and (not isinstance(source, str) or os.path.realpath(source) != str(root)):
        if isinstance(source, str):
            steps.append(["codex", "plugin", "marketplace", "remove", MARKETPLACE])
        steps.append(["codex", "plugin", "marketplace", "add", str(root)])
    steps.append(["codex", "plugin", "add", PLUGIN_ID])
    return " && ".join(join(words) for words in steps)


def codex_copy(root: Path | None) -> list[Finding]:
    """Does Codex run what this checkout holds? It runs its cached copy until `codex plugin add` again."""
    config, _ = _codex_config()
    copy = codex_cached_copy()
    if copy is None or (config is not None and PLUGIN_ID not in _table(config, "plugins")):
        return [("PASS", f"Codex: {PLUGIN} is not installed ({codex_home()}), nothing to compare", "")]
    if root is None:
        return [("PASS", "Codex: this relay runs without a plugin dir, nothing to compare", "")]
    return [_compare("Codex", copy, root, _codex_reinstall(root))]


# -- (d) is the checkout's binary built from its sources? ----------------------------------------


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
        from relay.util.source_hash import RECORD_NAME, read_record, source_hash

        recorded = read_record(root / RECORD_NAME).get(triple)
        current = source_hash(root)
    except (OSError, ValueError) as err:
        return [("WARN", f"binary: cannot tell what bin/relay-{triple} was built from ({err})", fix)]
    if not binary.is_file():
        return [("WARN", f"binary: bin/relay-{triple} is missing; the launcher runs the sources with python3", fix)]
    if recorded is None:
        return [("WARN", f"binary: build/built-from.txt has no record of bin/relay-{triple}", fix)]
    if _digest(binary) != recorded[0]:
        return [("WARN", f"binary: bin/relay-{triple} is not the one build/built-from.txt records", fix)]
    if recorded[1] != current:
        return [
            ("WARN", f"binary: bin/relay-{triple} was built from other sources than relay/ and pyproject.toml now", fix)
        ]
    return [("PASS", f"binary: bin/relay-{triple} was built from the current sources", "")]
