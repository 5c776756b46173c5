"""Claude Code: everything relay knows about this one agent CLI.

- Hooks: the plugin's hooks/hooks.json names the five events relay serves; they are Claude's own
  names (relay.agents.hook_protocol), and so is the shape of the hook's answer.
- Transcripts: `${CLAUDE_CONFIG_DIR:-~/.claude}/projects/<encoded dir>/<uuid>.jsonl`; the cwd is read
  from the content, never from the lossy directory name; sub-agents' files are not sessions.
- Live: Claude Code keeps `$CLAUDE_CONFIG_DIR/sessions/<pid>.json` (`{"pid", "sessionId", "cwd",
  "procStart", ...}`) only while that session's process runs. A session is live when such a file
  names it, its pid is alive, and that process is Claude Code (a leftover file whose pid died, or
  was reused by another program, does not count). A transcript's mtime is no liveness signal.
- Wake: `claude -p --resume <id>` with the options below, the prompt the last argument after `--`.

Everything read here is read-only and best effort: what cannot be read counts as not there.
"""

import os

from relay.agents.hook_protocol import ANSWER_NOTES
from relay.agents.hook_protocol import EVENTS as EVENTS  # this CLI speaks Claude's hook protocol
from relay.agents.hook_protocol import hook_output as hook_output
from relay.domain.ids import is_uuid
from relay.util import jsonlite
from relay.util.env import env_value

# relay.host's procinfo and transcripts are imported by the functions that read them: the hook
# asks this module only for its event table and answer shape, at every prompt and tool call.
TYPE_CHECKING = False  # `send` asks whether its recipient runs: typing stays off that path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from relay.agents.adapter_protocol import Finding
    from relay.store.contract import StoreAPI

NAME = "claude"

# Claude's own SendMessage is not relay's `send` (the note's text and why: relay.agents.hook_protocol).
ANSWER_NOTE = ANSWER_NOTES[NAME]

# A real sessions/<pid>.json is a few hundred bytes.
_MAX_SESSION_FILE = 64 * 1024
# Names the Claude Code process goes by: the npm wrapper's native binary is `claude.exe`, the
# native installer's a version number behind a `claude` link; both set their title to `claude`.
_CLAUDE_NAMES = ("claude", "claude.exe")

# Claude names a plugin's MCP tools mcp__plugin_<plugin>_<server>__<tool>: this rule allows every tool
# of the plugin's server (relay.agents.install_files.PLUGIN, relay.domain.bus_tools.SERVER; a test
# holds the three together). Written out so that the hook imports neither.
BUS_RULE = "mcp__plugin_session-relay_bus"

# Fixed options of the woken Claude, tried against the real Claude Code 2.1.197:
# - `claude -p` denies MCP tools nobody allowed; the server-wide rule lets the woken session call every
#   tool of the plugin's bus (`inbox` to read, `send` to answer) and nothing else.
# - In `-p` mode Claude connects MCP servers in the background, so a bus that starts slowly (a loaded
#   machine, a cold start) is missing from the first model request. MCP_CONNECTION_NONBLOCKING=0 makes
#   Claude wait for its servers first, but only MCP_CONNECT_TIMEOUT_MS (default 5 s) long.
WAKE_OPTIONS: tuple[str, ...] = (
    "--allowedTools",
    BUS_RULE,
    "--settings",
    '{"env":{"MCP_CONNECTION_NONBLOCKING":"0","MCP_CONNECT_TIMEOUT_MS":"30000"}}',
)


def wake_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that resumes `session_id` headless with `prompt` (relay's nudge) as its one input."""
    return ["claude", "-p", "--resume", session_id, "--output-format", "json", *WAKE_OPTIONS, "--", prompt]


# ---------------------------------------------------------------- transcripts (discover, gc)


def projects_root() -> "Path":
    """$RELAY_CLAUDE_PROJECTS, else ${CLAUDE_CONFIG_DIR:-~/.claude}/projects."""
    from relay.host import transcripts

    return transcripts.config_root("RELAY_CLAUDE_PROJECTS", "CLAUDE_CONFIG_DIR", ".claude", "projects")


def transcript_files(root: "Path", since: float) -> "Iterator[tuple[str, str, float]]":
    """(id, path, mtime) of `<root>/<dir>/<uuid>.jsonl` changed since `since`.

    Only one level deep, so sub-agent transcripts under `<uuid>/subagents/` are never seen, and
    the uuid file-name rule drops the older `agent-<hex>.jsonl` side files.
    """
    from relay.host import transcripts

    for project in transcripts.scan_dir(root):
        if not project.is_dir(follow_symlinks=False):
            continue
        yield from transcripts.uuid_files(project.path, since)


class Sidechain(Exception):
    """The transcript belongs to a sub-agent, not a session."""


def transcript_cwd(path: str) -> str | None:
    """The first `cwd` in a Claude transcript; raises Sidechain for a sub-agent's file."""
    from relay.host import transcripts

    for line in transcripts.bounded_lines(path):
        if b'"cwd"' not in line and b'"isSidechain"' not in line:
            continue
        record = transcripts.json_object(line)
        if record is None:
            continue
        if record.get("isSidechain") is True:
            raise Sidechain
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def recent_sessions(since: float) -> "Iterator[tuple[str, str | None, float]]":
    """(id as written, cwd, last activity) of each session whose transcript changed since `since`."""
    for session_id, path, mtime in transcript_files(projects_root(), since):
        try:
            yield session_id, transcript_cwd(path), mtime
        except Sidechain:
            continue


def transcript_times() -> "Iterator[tuple[str, float]]":
    """(id as written, mtime) of every transcript on this machine, without opening one."""
    for session_id, _, mtime in transcript_files(projects_root(), 0.0):
        yield session_id, mtime


# ---------------------------------------------------------------- is it running now?


def sessions_dir() -> str:
    """Where Claude Code lists its running sessions."""
    config = env_value("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
    return os.path.join(config, "sessions")


def _records(only: str | None = None) -> "Iterator[dict]":
    """The sessions/<pid>.json records (only those naming `only`, when given), each read once."""
    from relay.host import transcripts

    directory = sessions_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.endswith(".json"):
            continue
        raw = transcripts.read_small(os.path.join(directory, name), _MAX_SESSION_FILE)
        if raw is None:
            continue
        try:
            record = jsonlite.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        named = record.get("sessionId")
        if isinstance(named, str) and is_uuid(named) and (only is None or named.lower() == only):
            yield record


def turn_running(pid: int) -> bool:
    """Does Claude's own record say a turn is running? Claude Code 2.1.3xx writes `"status": "busy"`
    to sessions/<pid>.json the moment a prompt is queued, while that prompt's hook may still be a
    second away: mail then belongs to the turn's hooks, not to a wake-up. Older Claude writes no
    status (False: the grace period alone decides)."""
    from relay.host import transcripts

    raw = transcripts.read_small(os.path.join(sessions_dir(), f"{pid}.json"), _MAX_SESSION_FILE)
    try:
        record = jsonlite.loads(raw) if raw is not None else None
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("status") == "busy"


def is_claude_process(pid: int) -> bool:
    """True when `pid` is a running Claude Code: its executable, argv[0] or title is `claude`, or a
    node running Claude Code's npm `cli.js`."""
    from relay.host import procinfo

    info = procinfo.process_info(pid)
    if info is None:
        return False
    argv = procinfo.command_line(pid)
    names = {info.name, procinfo.title(pid), os.path.basename(argv[0]) if argv else None}
    if any(name in _CLAUDE_NAMES for name in names if name):
        return True
    return any("claude-code" in word and word.endswith((".js", ".cjs", ".mjs")) for word in argv[1:3])


def _same_process(pid: int, record: dict) -> bool:
    """False when the record says when its process started and the pid now is a newer process."""
    from relay.host import procinfo

    started = record.get("procStart")
    if not isinstance(started, str | int) or not procinfo._has_proc():  # only Linux's start token compares
        return True
    return procinfo.same_process(pid, str(started))


def live_sessions(only: str | None = None) -> set[str]:
    """Ids (lower case) of the sessions a running Claude Code process has open, from one read of
    the sessions dir; `only` limits the work to the records naming that id."""
    live: set[str] = set()
    for record in _records(only):
        pid = record.get("pid")
        if type(pid) is int and pid > 0 and is_claude_process(pid) and _same_process(pid, record):
            live.add(record["sessionId"].lower())
    return live


def is_live(session_id: str) -> bool:
    """A running Claude Code process has `session_id` (lower case) open."""
    return session_id in live_sessions(session_id)


# ---------------------------------------------------------------- ringing an idle session (docs/wake.md)
#
# Claude Code 2.1.224+ listens on a Unix socket per session for other sessions' messages
# (`messagingSocketPath` in sessions/<pid>.json, `<runtime dir>/cc-socks/<pid>.sock`): one JSON
# object per line; a `user` message starts a turn in an idle session, its UserPromptSubmit hook
# running first. relay writes only its fixed nudge there, so the hook takes and fences the mail.

# Why a session is not rung (the outcome of `socket_ring`); RANG when the line was written.
RANG = "rang"
NO_SOCKET = "no messaging socket"
BUSY = "turn in progress"
BYPASS = "runs without permission prompts"

# Claude holds, unshown, a peer message that declares no sender mode while the session bypasses
# permission prompts; relay declares none, so such a session is left to the watcher.
_BYPASS_FLAGS = ("--dangerously-skip-permissions", "--permission-mode=bypassPermissions")


def _bypasses(argv: list[str]) -> bool:
    """Was this Claude started without permission prompts (its flags; a later switch is not seen)?"""
    for i, word in enumerate(argv):
        if word in _BYPASS_FLAGS or (word == "--permission-mode" and argv[i + 1 : i + 2] == ["bypassPermissions"]):
            return True
    return False


def ring_target(session_id: str) -> tuple[str, str | None]:
    """("ring", the socket path) when `session_id` (lower case) is open in a running, idle Claude
    Code that listens on its own messaging socket; else (why not, None).

    The record must name the session, its pid must be a running Claude Code with the record's
    start time, its status `idle`, and its socket `<private dir>/<pid>.sock` (relay.host.unixsock
    checks the dir and the owner before it writes)."""
    from relay.host import procinfo

    if not procinfo._has_proc():  # only Linux's start token is compared: elsewhere the watcher serves
        return NO_SOCKET, None
    for record in _records(session_id):
        pid, path, started = record.get("pid"), record.get("messagingSocketPath"), record.get("procStart")
        if type(pid) is not int or pid <= 0 or not isinstance(started, str | int):
            continue
        if not (is_claude_process(pid) and procinfo.same_process(pid, str(started))):
            continue  # a leftover record, or a pid reused since
        if not isinstance(path, str) or os.path.basename(path) != f"{pid}.sock":
            return NO_SOCKET, None
        if record.get("status") != "idle":
            return BUSY, None
        if _bypasses(procinfo.command_line(pid)):
            return BYPASS, None
        return "ring", path
    return NO_SOCKET, None


def socket_line(text: str) -> bytes:
    """The one line that hands `text` to a session as a message from another session."""
    return jsonlite.dumps({"type": "user", "message": {"role": "user", "content": text}}).encode() + b"\n"


def socket_ring(session_id: str, text: str) -> str:
    """Write `text` (relay's fixed nudge, never mail) to the session's messaging socket when
    `ring_target` allows: RANG, or why it was not rung."""
    from relay.host.unixsock import send_line

    why, path = ring_target(session_id)
    if path is None:
        return why
    failed = send_line(path, socket_line(text))
    return RANG if failed is None else failed


# ---------------------------------------------------------------- relay doctor: is the plugin installed so it works?
#
# Claude Code installs the plugin from the clone with `claude plugin marketplace add <clone>` and
# `claude plugin install <id>`; a marketplace added from a local clone runs the clone itself.
# `claude -p` (a wake) denies MCP tools nobody allowed, and a settings file's deny rule wins over
# the wake's --allowedTools. Read from $CLAUDE_CONFIG_DIR and the projects' .claude/ settings.


def config_dir() -> "Path":
    """$CLAUDE_CONFIG_DIR, else ~/.claude."""
    from relay.host import transcripts

    return transcripts.config_home("CLAUDE_CONFIG_DIR", ".claude")


def _bus_tools() -> list[str]:
    from relay.domain.bus_tools import TOOL_NAMES

    return [f"{BUS_RULE}__{name}" for name in TOOL_NAMES]


def _rule_covers(rule: str, tool: str) -> bool:
    """Does a Claude permission rule name this MCP tool (the server, the tool, or a wildcard)?"""
    from fnmatch import fnmatchcase

    return rule == BUS_RULE or fnmatchcase(tool, rule)


def _edit_list(path: "Path", key: str, rule: str, add: bool) -> str:
    """A command that adds (or removes) `rule` in `key` ("allow"/"deny") of a settings file's permissions."""
    from shlex import join

    change = "l.append(r) if r not in l else None" if add else "l.remove(r) if r in l else None"
    script = (
        "import json,os,sys;p,r=sys.argv[1],sys.argv[2];"
        "d=json.load(open(p)) if os.path.exists(p) else {};"
        f"l=d.setdefault('permissions',{{}}).setdefault('{key}',[]);{change};"
        "json.dump(d,open(p,'w'),indent=2)"
    )
    return join(["python3", "-c", script, str(path), rule])


def _settings_files(store: "StoreAPI") -> "list[Path]":
    """The settings a woken Claude reads: the user's, and the project settings of every registered
    Claude session's dir (it wakes there) and of the current dir."""
    from pathlib import Path

    from relay.util.errors import RelayError

    dirs = {os.getcwd()}
    # The file store reads a corrupt registry without moving it aside; another store's registry() is read-only.
    read = getattr(store, "registry_as_is", store.registry)
    try:
        for entry in read().agents.values():
            directory = entry.get("dir")
            if entry.get("tool") == NAME and isinstance(directory, str) and directory.startswith("/"):
                dirs.add(directory)
    except (RelayError, OSError):  # the store's facts report what is wrong with it; here it only narrows the look
        pass
    files = [config_dir() / "settings.json"]
    for directory in sorted(dirs):
        files += [Path(directory) / ".claude" / "settings.json", Path(directory) / ".claude" / "settings.local.json"]
    return files


def woken_tools(store: "StoreAPI") -> "list[Finding]":
    """Will `relay wake` give a resumed Claude the bus tools (inbox to read, send to answer)?"""
    from shlex import join

    from relay.agents.install_files import PLUGIN, PLUGIN_ID, read_json, table

    argv = wake_argv("00000000-0000-4000-8000-000000000000", "")
    allowed: list[str] = []
    for i, word in enumerate(argv[:-1]):
        if word in ("--allowedTools", "--allowed-tools"):
            allowed += argv[i + 1].replace(",", " ").split()
    tools = _bus_tools()
    found: list[Finding] = []
    if not all(any(_rule_covers(rule, tool) for rule in allowed) for tool in tools):
        found.append(
            (
                "WARN",
                f"woken Claude: the wake command does not allow {BUS_RULE}: `claude -p` denies MCP tools "
                "nobody allowed, so a woken session cannot read its mail",
                _edit_list(config_dir() / "settings.json", "allow", BUS_RULE, add=True),
            )
        )
    files = _settings_files(store)
    for path in files:
        settings = read_json(path)
        if not isinstance(settings, dict):
            continue
        deny = table(settings, "permissions").get("deny")
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
        if path == files[0] and table(settings, "enabledPlugins").get(PLUGIN_ID) is False:
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


def _marketplace_plugin_dir(marketplace: "Path") -> str:
    """Where, inside a local marketplace, the plugin lives (its `source`; "./" for this repo)."""
    from relay.agents.install_files import PLUGIN, read_json

    listing = read_json(marketplace / ".claude-plugin" / "marketplace.json")
    for plugin in listing.get("plugins", []) if isinstance(listing, dict) else []:
        if isinstance(plugin, dict) and plugin.get("name") == PLUGIN and isinstance(plugin.get("source"), str):
            return plugin["source"]
    return "."


def reinstall(root: "Path", from_directory: bool) -> str:
    """The commands that make Claude Code run the checkout `root`: a marketplace added from a local
    directory is replaced by `root`; any other is updated, and the plugin with it."""
    from shlex import join

    from relay.agents.install_files import MARKETPLACE, PLUGIN_ID

    steps = [["claude", "plugin", "marketplace", "update", MARKETPLACE], ["claude", "plugin", "update", PLUGIN_ID]]
    if from_directory:
        steps = [
            ["claude", "plugin", "marketplace", "remove", MARKETPLACE],
            ["claude", "plugin", "marketplace", "add", str(root)],
            ["claude", "plugin", "install", PLUGIN_ID],
        ]
    return " && ".join(join(words) for words in steps)


def runs_checkout(root: "Path | None") -> "list[Finding]":
    """Does Claude Code run this checkout? A marketplace added from a local clone runs the clone itself."""
    from pathlib import Path

    from relay.agents.install_files import MARKETPLACE, PLUGIN, PLUGIN_ID, compare, read_json, table, version

    config = config_dir()
    installed = table(read_json(config / "plugins" / "installed_plugins.json"), "plugins").get(PLUGIN_ID)
    if not isinstance(installed, list) or not installed:
        return [("PASS", f"Claude Code: {PLUGIN} is not installed ({config}), nothing to compare", "")]
    if root is None:
        return [("PASS", "Claude Code: this relay runs without a plugin dir, nothing to compare", "")]
    market = table(read_json(config / "plugins" / "known_marketplaces.json"), MARKETPLACE)
    source = table(market, "source")
    location = market.get("installLocation") or source.get("path")
    if source.get("source") == "directory" and isinstance(location, str):
        copy = Path(location) / _marketplace_plugin_dir(Path(location))
        fix = reinstall(root, from_directory=True)
    else:
        entry = installed[0] if isinstance(installed[0], dict) else {}
        copy = Path(str(entry.get("installPath") or ""))
        fix = reinstall(root, from_directory=False)
    if os.path.realpath(copy) == str(root):
        return [("PASS", f"Claude Code runs this checkout itself ({root}, version {version(root)})", "")]
    if not copy.is_dir():
        return [("WARN", f"Claude Code's copy of {PLUGIN} is missing ({copy})", fix)]
    return [compare("Claude Code", copy, root, fix)]


def doctor_findings(store: "StoreAPI", root: "Path | None") -> "list[Finding]":
    """Claude Code's install checks: may a woken session use the bus, and does it run this checkout?"""
    return woken_tools(store) + runs_checkout(root)
