"""Gemini CLI: everything relay knows about this one agent CLI (docs/agents/gemini.md).

- Extension: the clone's `gemini/` directory (gemini-extension.json + hooks/hooks.json), linked with
  `gemini extensions link <clone>/gemini`, so Gemini runs the clone itself and a `git pull` updates
  it. Its hooks run `<clone>/launcher hook gemini`; its MCP server `bus` is `<clone>/launcher bus`.
  It lives apart from the clone's root because Claude Code reads the root's hooks/hooks.json with
  Claude's event names, which Gemini does not share.
- Hooks: Gemini's own event names, mapped to relay's moments below; it reads the same answer
  shape as Claude (`hookSpecificOutput.additionalContext`, and `decision: block` at AfterAgent
  to go on with the turn). Its hooks run synchronously: nothing can start a turn in an idle
  session, so mail waits for its next prompt (or `relay wake` resumes a finished one).
- Transcripts: `${GEMINI_CLI_HOME:-~}/.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`,
  whose first line holds `sessionId`; the project dir is in `<project>/.project_root`.
- Live: Gemini keeps no per-session pid or lock file. A session is taken as running when a Gemini
  process works in its project dir and either names the session on its command line (`--resume
  ID`, `--session-id ID`) or the session's transcript is that dir's newest one. Two sessions open in
  the same dir at once: only the newest counts as live (docs/agents/gemini.md).
- Wake: `gemini --resume <id> --policy <clone>/gemini/bus-policy.toml -o json --prompt=<nudge>`
  (headless; the policy lets the woken model call the bus's tools and nothing else).

`os` is imported inside the functions that use it: the hook loads this module to name its
events, and with nothing to deliver it imports no `os` (docs/startup.md).
"""

from relay.domain.ids import is_uuid
from relay.util.env import launcher_path

TYPE_CHECKING = False  # typing and pathlib stay off the hook's and send's paths
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from relay.agents.adapter_protocol import Finding
    from relay.store.contract import StoreAPI

NAME = "gemini"

ANSWER_NOTE = None  # Gemini has no messaging tool of its own to mistake for relay's `send`

# Gemini's hook event -> relay's moment (Gemini 0.61 names).
EVENTS = {
    "SessionStart": "SessionStart",
    "BeforeAgent": "UserPromptSubmit",
    "AfterTool": "PostToolUse",
    "AfterAgent": "Stop",
    "SessionEnd": "SessionEnd",
}
_GEMINI_NAME = {moment: event for event, moment in EVENTS.items()}

# The extension's directory inside the clone, and the policy file in it that allows the bus.
EXTENSION_DIR = "gemini"
POLICY_FILE = "bus-policy.toml"
EXTENSION = "session-relay"  # the extension's name in gemini-extension.json

# A first transcript line ({sessionId, projectHash, startTime, lastUpdated, kind}) is small.
_FIRST_LINE_LIMIT = 64 * 1024
_PROJECT_ROOT_LIMIT = 64 * 1024


def hook_output(moment: str, text: str) -> dict[str, object]:
    """The hook's answer that puts `text` in front of the model at `moment`.

    At AfterAgent, `decision: block` makes Gemini go on with the turn, the reason as its next input."""
    if moment == "Stop":
        return {"decision": "block", "reason": text}
    return {"hookSpecificOutput": {"hookEventName": _GEMINI_NAME.get(moment, moment), "additionalContext": text}}


def policy_path() -> str | None:
    """The shipped bus policy of the checkout relay runs from: next to its launcher, else (relay run
    from the sources) next to the package. None when it is not there."""
    import os

    launcher = launcher_path()
    if launcher:
        root = os.path.dirname(launcher)
    else:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, EXTENSION_DIR, POLICY_FILE)
    return path if os.path.isfile(path) else None


def wake_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that resumes `session_id` headless with `prompt` (relay's nudge) as its one input.

    The prompt is one `--prompt=` word, so no text can become an option; the policy (when relay runs
    from a clone that has it) allows the bus's tools, without which a headless Gemini refuses them."""
    policy = policy_path()
    options = ["--policy", policy] if policy else []
    return ["gemini", "--resume", session_id, *options, "-o", "json", f"--prompt={prompt}"]


# ---------------------------------------------------------------- transcripts (discover, gc)


def gemini_dir() -> "Path":
    """${GEMINI_CLI_HOME:-~}/.gemini: where Gemini CLI keeps its settings and sessions."""
    from pathlib import Path

    from relay.util.env import usable_env

    home = usable_env("GEMINI_CLI_HOME")
    return (Path(home) if home else Path.home()) / ".gemini"


def tmp_root() -> "Path":
    """$RELAY_GEMINI_TMP, else ${GEMINI_CLI_HOME:-~}/.gemini/tmp (one dir per project)."""
    from pathlib import Path

    from relay.util.env import usable_env

    chosen = usable_env("RELAY_GEMINI_TMP")
    return Path(chosen) if chosen else gemini_dir() / "tmp"


def short_id(name: str) -> str | None:
    """The first 8 hex digits of the session id in a transcript's name, session-<time>-<id8>.jsonl."""
    if not (name.startswith("session-") and name.endswith(".jsonl")):
        return None
    tail = name[:-6].rsplit("-", 1)[-1]
    return tail.lower() if len(tail) == 8 and all(ch in "0123456789abcdefABCDEF" for ch in tail) else None


def project_root(project: str) -> str | None:
    """The project dir Gemini wrote into `<project>/.project_root` (absolute), else None."""
    import os

    from relay.host import transcripts

    raw = transcripts.read_small(os.path.join(project, ".project_root"), _PROJECT_ROOT_LIMIT)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
    return text if text.startswith("/") and "\n" not in text else None


def transcript_files(root: "Path | str", since: float) -> "Iterator[tuple[str, str, float]]":
    """(project dir in tmp/, transcript path, mtime) of every `session-*.jsonl` changed since `since`."""
    import os

    from relay.host import transcripts

    for project in transcripts.scan_dir(root):
        if not project.is_dir(follow_symlinks=False):
            continue
        for entry in transcripts.scan_dir(os.path.join(project.path, "chats")):
            if short_id(entry.name) is None:
                continue
            mtime = transcripts.fresh_mtime(entry, since)
            if mtime is not None:
                yield project.path, entry.path, mtime


def session_id_of(path: str) -> str | None:
    """The `sessionId` of a transcript's first line, when it is a UUID whose start the file name repeats."""
    import os

    from relay.host import transcripts

    line = None
    for line in transcripts.bounded_lines(path, _FIRST_LINE_LIMIT):
        if line.strip():
            break
    record = transcripts.json_object(line) if line else None
    found = record.get("sessionId") if record else None
    if not is_uuid(found) or short_id(os.path.basename(path)) != found[:8].lower():
        return None
    return found


def recent_sessions(since: float) -> "Iterator[tuple[str | None, str | None, float]]":
    """(id as written, cwd, last activity) of each session whose transcript changed since `since`."""
    roots: dict[str, str | None] = {}
    for project, path, mtime in transcript_files(tmp_root(), since):
        if project not in roots:
            roots[project] = project_root(project)
        yield session_id_of(path), roots[project], mtime


def transcript_times() -> "Iterator[tuple[str, float]]":
    """(id, mtime) of every transcript on this machine (each opened for its first line: the file
    name holds only the id's first 8 digits)."""
    for _, path, mtime in transcript_files(tmp_root(), 0.0):
        found = session_id_of(path)
        if found:
            yield found, mtime


# ---------------------------------------------------------------- is it running now?

_NODES = ("node", "nodejs", "bun")
_SCRIPTS = ("gemini", "gemini.js")
_ID_OPTIONS = ("--resume", "-r", "--session-id")


def is_gemini_command(argv: list[str]) -> bool:
    """Is this command line Gemini CLI? Its own binary (`gemini`), or a node running its script
    (the npm link `.../bin/gemini`, or `.../bundle/gemini.js` when it relaunches itself)."""
    import os

    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program == "gemini":
        return True
    if program not in _NODES:
        return False
    script = next((word for word in argv[1:] if not word.startswith("-")), "")
    return os.path.basename(script) in _SCRIPTS


def named_session(argv: list[str]) -> str | None:
    """The session id a Gemini command line names (`--resume ID`, `--session-id ID`, or `=ID`)."""
    for i, word in enumerate(argv):
        option, equals, value = word.partition("=")
        if option in _ID_OPTIONS:
            candidate = value if equals else (argv[i + 1] if i + 1 < len(argv) else "")
            if is_uuid(candidate):
                return candidate.lower()
    return None


def _gemini_processes() -> "list[tuple[list[str], str]]":
    """(argv, cwd) of every running Gemini CLI process (Linux: /proc)."""
    from relay.host import procinfo

    found = []
    for pid in procinfo.matching_pids(lambda info: info.name in _NODES or info.name == "gemini"):
        argv = procinfo.command_line(pid)
        if is_gemini_command(argv):
            cwd = procinfo.process_cwd(pid)
            if cwd:
                found.append((argv, cwd))
    return found


def live_sessions() -> set[str]:
    """Ids (lower case) of the sessions a running Gemini process has open, as far as can be told:
    the one its command line names, else the newest transcript of the project it works in."""
    import os

    processes = _gemini_processes()
    if not processes:
        return set()
    live = {named for argv, _ in processes if (named := named_session(argv))}
    unnamed_dirs = {os.path.realpath(cwd) for argv, cwd in processes if named_session(argv) is None}
    if not unnamed_dirs:
        return live
    newest: dict[str, tuple[float, str]] = {}
    roots: dict[str, str | None] = {}
    for project, path, mtime in transcript_files(tmp_root(), 0.0):
        if project not in roots:
            root = project_root(project)
            roots[project] = os.path.realpath(root) if root else None
        if roots[project] in unnamed_dirs and mtime > newest.get(project, (-1.0, ""))[0]:
            newest[project] = (mtime, path)
    for _, path in newest.values():
        found = session_id_of(path)
        if found:
            live.add(found.lower())
    return live


def is_live(session_id: str) -> bool:
    """A running Gemini process has `session_id` (lower case) open (see live_sessions)."""
    return session_id in live_sessions()


# ---------------------------------------------------------------- relay doctor: is the extension installed so it works?
#
# `gemini extensions link <clone>/gemini` records the link in
# ${GEMINI_CLI_HOME:-~}/.gemini/extensions/session-relay/.gemini-extension-install.json
# ({"source": <dir>, "type": "link"}); `gemini extensions install` would copy the directory instead,
# and a copy of gemini/ alone has no launcher to run. Headless runs (and `relay wake`) need a policy
# that allows the bus's tools.


def install_record() -> "dict | None":
    """Gemini's record of how the extension was installed, or None when it is not."""
    from relay.agents.install_files import read_json

    record = read_json(gemini_dir() / "extensions" / EXTENSION / ".gemini-extension-install.json")
    return record if isinstance(record, dict) else None


def link_command(root: "Path") -> str:
    """The commands that make Gemini run the checkout `root`'s extension."""
    from shlex import join

    return " && ".join(
        join(words)
        for words in (
            ["gemini", "extensions", "uninstall", EXTENSION],
            ["gemini", "extensions", "link", str(root / EXTENSION_DIR), "--consent"],
        )
    )


def runs_checkout(root: "Path | None") -> "list[Finding]":
    """Is the extension linked to this checkout's gemini/ directory?"""
    import os
    from shlex import join

    record = install_record()
    where = gemini_dir() / "extensions" / EXTENSION
    if record is None:
        return [("PASS", f"Gemini CLI: {EXTENSION} is not installed ({where}), nothing to check", "")]
    if root is None:
        return [("PASS", "Gemini CLI: this relay runs without a plugin dir, nothing to compare", "")]
    mine = root / EXTENSION_DIR
    source = record.get("source")
    if record.get("type") == "link" and isinstance(source, str) and os.path.realpath(source) == str(mine):
        return [("PASS", f"Gemini CLI runs this checkout itself (linked to {mine})", "")]
    if record.get("type") != "link":
        why = f"is installed as a copy ({record.get('type')}), which has no launcher to run; link the clone instead"
    else:
        why = f"is linked to {source}, not to this checkout ({mine})"
    fix = link_command(root) if (mine / "gemini-extension.json").is_file() else join(["ls", str(mine)])
    return [("WARN", f"Gemini CLI: {EXTENSION} {why}", fix)]


def bus_allowed(root: "Path | None") -> "list[Finding]":
    """Can a headless Gemini (and a woken one) call the bus's tools? Only a policy allows them."""
    from relay.agents.install_files import read_small
    from relay.host import transcripts

    if install_record() is None:
        return []
    policies = gemini_dir() / "policies"
    for entry in transcripts.scan_dir(policies):
        data = read_small(policies / entry.name) if entry.name.endswith(".toml") else None
        if data and b'mcpName = "bus"' in data and b'"allow"' in data:
            return [("PASS", f"Gemini CLI: {policies / entry.name} allows the bus's tools in every session", "")]
    shipped = root / EXTENSION_DIR / POLICY_FILE if root is not None else None
    if shipped is not None and shipped.is_file():
        return [
            (
                "PASS",
                f"Gemini CLI: `relay wake` passes --policy {shipped}; other headless runs need it too "
                f"(or copy it into {policies}/)",
                "",
            )
        ]
    return [("WARN", "Gemini CLI: no policy allows the bus's tools, so a headless Gemini cannot read its mail", "")]


def doctor_findings(store: "StoreAPI", root: "Path | None") -> "list[Finding]":
    """Gemini CLI's install checks: does it run this checkout, and may a headless run use the bus?"""
    return runs_checkout(root) + bus_allowed(root)
