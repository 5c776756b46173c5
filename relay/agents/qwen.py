"""Qwen Code: everything relay knows about this one agent CLI (docs/agents/qwen.md).

- Install: the clone's own `qwen-extension.json` (Qwen's native manifest, which Qwen prefers to
  converting the Claude plugin beside it) names the bus and the hooks; `qwen extensions install
  <clone>:session-relay --consent` copies the clone, `qwen extensions link <clone>` runs it in place.
- Hooks: Qwen speaks Claude's hook protocol (relay.agents.hook_protocol): the same event names, stdin
  and answers; `relay hook qwen`. A Qwen hook also gets QWEN_CODE_SESSION_ID (the session's id) and
  QWEN_PROJECT_DIR, which Claude never sets: `is_qwen_event` tells a Qwen event from a Claude one for
  a hook that was not told its CLI (Qwen converting the Claude plugin runs Claude's `relay hook`).
- Transcripts: `${QWEN_HOME:-~/.qwen}/projects/<encoded cwd>/chats/<uuid>.jsonl`; every line carries
  `sessionId` and `cwd`.
- Live: Qwen keeps no per-session file and holds no transcript open. It starts its MCP servers with
  QWEN_CODE_SESSION_ID in their environment, so a session is live while a child of a running Qwen
  process (relay's own bus, at least) was started for it.
- Wake: `qwen --resume <id> ... --prompt <nudge>` runs one turn headless. Qwen has no way to
  start a turn in an open idle session: its mail waits for the next prompt.

Everything read here is read-only and best effort: what cannot be read counts as not there.

`os` is imported inside the functions that use it: the hook loads this module to name its
events, and with nothing to deliver it imports no `os` (docs/startup.md).
"""

from relay.agents.hook_protocol import EVENTS as EVENTS  # this CLI speaks Claude's hook protocol
from relay.agents.hook_protocol import hook_output as hook_output
from relay.domain.ids import is_uuid

TYPE_CHECKING = False  # typing stays off the hook's path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from relay.agents.adapter_protocol import Finding
    from relay.store.contract import StoreAPI

NAME = "qwen"

ANSWER_NOTE = None  # a Qwen model has no messaging tool of its own to mistake for relay's `send`

# What Qwen sets in the environment of its hooks and MCP servers: the session they serve.
SESSION_ENV = "QWEN_CODE_SESSION_ID"

# Qwen names an MCP tool mcp__<server>__<tool>; a rule naming the server allows all of its tools.
# `qwen -p` (and a resumed headless turn) refuses a tool call that needs approval, MCP tools included.
BUS_RULE = "mcp__bus"
WAKE_OPTIONS: tuple[str, ...] = ("--output-format", "json", "--allowed-tools", BUS_RULE)


def wake_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that resumes `session_id` headless with `prompt` (relay's nudge) as its one input.

    The prompt is the value of `--prompt`, the last argument: Qwen 0.24 takes no prompt after `--`
    (it then reads stdin and, finding none, exits 1)."""
    return ["qwen", "--resume", session_id, *WAKE_OPTIONS, "--prompt", prompt]


def moment_of(event: dict) -> str | None:
    """Relay's moment for one Qwen hook event. Qwen fires UserPromptSubmit before every model
    request of a turn, the one that sends tool results back too; only one that carries the user's
    `submitted_prompt` is a prompt. The others come between tool calls and are served as
    PostToolUse (urgent mail), so the rest of the turn's mail stays for its Stop."""
    raw = event.get("hook_event_name", "SessionStart")
    moment = EVENTS.get(raw) if isinstance(raw, str) else None
    submitted = event.get("submitted_prompt")
    if moment == "UserPromptSubmit" and not (isinstance(submitted, str) and submitted.strip()):
        return "PostToolUse"
    return moment


def is_qwen_event(event: dict) -> bool:
    """Was this hook run by Qwen Code? Qwen sets QWEN_CODE_SESSION_ID to the event's session in every
    hook's environment; a Claude session started from a Qwen shell inherits another id, never its own."""
    from relay.util.env import usable_env

    claimed = usable_env(SESSION_ENV)
    session_id = event.get("session_id")
    return isinstance(claimed, str) and isinstance(session_id, str) and claimed.lower() == session_id.lower()


# ---------------------------------------------------------------- transcripts (discover, gc)


def projects_root() -> "Path":
    """$RELAY_QWEN_PROJECTS, else ${QWEN_HOME:-~/.qwen}/projects."""
    from relay.host import transcripts

    return transcripts.config_root("RELAY_QWEN_PROJECTS", "QWEN_HOME", ".qwen", "projects")


def transcript_files(root: "Path", since: float) -> "Iterator[tuple[str, str, float]]":
    """(id, path, mtime) of `<root>/<dir>/chats/<uuid>.jsonl` changed since `since`."""
    import os

    from relay.host import transcripts

    for project in transcripts.scan_dir(root):
        if not project.is_dir(follow_symlinks=False):
            continue
        yield from transcripts.uuid_files(os.path.join(project.path, "chats"), since)


def transcript_cwd(path: str) -> str | None:
    """The first `cwd` in a Qwen transcript (every line has one)."""
    from relay.host import transcripts

    for line in transcripts.bounded_lines(path):
        if b'"cwd"' not in line:
            continue
        record = transcripts.json_object(line)
        cwd = record.get("cwd") if record is not None else None
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def recent_sessions(since: float) -> "Iterator[tuple[str, str | None, float]]":
    """(id as written, cwd, last activity) of each session whose transcript changed since `since`."""
    for session_id, path, mtime in transcript_files(projects_root(), since):
        yield session_id, transcript_cwd(path), mtime


def transcript_times() -> "Iterator[tuple[str, float]]":
    """(id as written, mtime) of every transcript on this machine, without opening one."""
    for session_id, _, mtime in transcript_files(projects_root(), 0.0):
        yield session_id, mtime


# ---------------------------------------------------------------- is it running now?


def is_qwen_process(pid: int) -> bool:
    """True when `pid` is a running Qwen Code: a node running the npm package's `cli.js`, or a
    program called `qwen`."""
    import os

    from relay.host import procinfo

    argv = procinfo.command_line(pid)
    if argv and os.path.basename(argv[0]) == "qwen":
        return True
    return any("qwen-code" in word and word.endswith("cli.js") for word in argv[1:3])


def live_sessions() -> set[str]:
    """Ids (lower case) of the sessions a running Qwen Code serves: the QWEN_CODE_SESSION_ID its
    children (its MCP servers) were started with. Linux only (elsewhere: none)."""
    from relay.host import procinfo

    if not procinfo._has_proc():
        return set()
    qwens = set(procinfo.matching_pids(lambda info: is_qwen_process(info.pid)))
    if not qwens:
        return set()
    live: set[str] = set()
    for child in procinfo.matching_pids(lambda info: info.ppid in qwens):
        claimed = procinfo.environ_value(child, SESSION_ENV)
        if is_uuid(claimed):
            live.add(claimed.lower())
    return live


def is_live(session_id: str) -> bool:
    """A running Qwen Code serves `session_id` (lower case)."""
    return session_id in live_sessions()


# ---------------------------------------------------------------- relay doctor: is the extension installed so it works?
#
# `qwen extensions install <clone>:session-relay --consent` copies the clone into
# ${QWEN_HOME:-~/.qwen}/extensions/session-relay/ and runs that copy until it is installed again;
# `qwen extensions link <clone>` records the clone's path and runs the clone itself.


def extension_dir() -> "Path":
    """Where Qwen keeps the installed extension."""
    from relay.host import transcripts

    return transcripts.config_home("QWEN_HOME", ".qwen") / "extensions" / "session-relay"


def reinstall(root: "Path") -> str:
    """The commands that make Qwen Code run the checkout `root` itself (linked: a `git pull` is then
    picked up with no further step)."""
    from shlex import join

    steps = [["qwen", "extensions", "uninstall", "session-relay"], ["qwen", "extensions", "link", str(root)]]
    return " && ".join(join(words) for words in steps)


def doctor_findings(store: "StoreAPI", root: "Path | None") -> "list[Finding]":
    """Qwen Code's install check: is the extension installed, and does it run this checkout?"""
    import os
    from pathlib import Path

    from relay.agents.install_files import compare, read_json, version

    del store  # a woken Qwen gets the bus tools from the wake's own --allowed-tools
    installed = extension_dir()
    record = read_json(installed / ".qwen-extension-install.json")
    if not isinstance(record, dict):
        return [("PASS", f"Qwen Code: session-relay is not installed ({installed}), nothing to compare", "")]
    if root is None:
        return [("PASS", "Qwen Code: this relay runs without a plugin dir, nothing to compare", "")]
    source = record.get("source")
    linked = record.get("type") == "link" and isinstance(source, str)
    copy = Path(source) if linked and isinstance(source, str) else installed
    if os.path.realpath(copy) == str(root):
        return [("PASS", f"Qwen Code runs this checkout itself ({root}, version {version(root)})", "")]
    if not (copy / "qwen-extension.json").is_file():
        return [("WARN", f"Qwen Code's copy of session-relay is missing or incomplete ({copy})", reinstall(root))]
    return [compare("Qwen Code", copy, root, reinstall(root))]
