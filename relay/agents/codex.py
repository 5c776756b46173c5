"""Codex: everything relay knows about this one agent CLI.

- Hooks: Codex speaks Claude's hook protocol (relay.agents.hook_protocol); `relay hook codex`.
- Transcripts: `${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-<timestamp>-<uuid>.jsonl`,
  whose first line is a `session_meta` event (id, cwd, source).
- Live: a Codex process holds its session's rollout open while the session runs.
- Wake: `codex exec resume <id> --json -- <prompt>`; an open idle session is rung with `codex
  queue` instead (relay.usecases.codex_queue).
- Which session an MCP server serves:

  Codex (0.169) gives its MCP servers no session id in the environment and, for a plugin server, not
  even the project dir (the server starts in the plugin's cache dir and `${...}` values arrive
  literally). Two things do identify the session, and were checked against the real Codex CLI:

  1. **Per tool call** (exact): every `tools/call` Codex sends carries `params._meta` =
     `{"sessionId": <id>, "threadId": <id>, "x-codex-turn-metadata": {"session_id": <id>,
     "thread_id": <id>, ...}, ...}`. `sessionId` is the id `codex exec` prints, the rollout's id and
     the hook's `session_id`. One Codex process can host several threads (`/new`, app-server), so
     this is read on every call, never cached.
  2. **Process ancestry** (fallback, for a call without `_meta`): the server's nearest ancestor named
     `codex` is the Codex process that spawned it, and that process keeps its session files open:
     `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<ts>-<id>.jsonl` and
     `$CODEX_HOME/thread-writer-locks/<id>.lock` — already when it spawns its MCP servers, and whether
     or not the user has trusted the plugin's hooks. Linux reads /proc, macOS asks `lsof`
     (see `relay.host.procinfo`).

  The project dir is the `cwd` in the session's rollout (`session_meta`), else the Codex process's
  current directory.

  RELAY_NO_ANCESTRY=1 turns the ancestry lookup off: a test suite run from inside a Codex session
  would otherwise see that session as the one of every bus it starts.
"""

import os

from relay.agents.hook_protocol import ANSWER_NOTES
from relay.agents.hook_protocol import EVENTS as EVENTS  # this CLI speaks Claude's hook protocol
from relay.agents.hook_protocol import hook_output as hook_output
from relay.domain.ids import is_uuid
from relay.util import jsonlite
from relay.util.values import Record

# relay.host's procinfo and transcripts are imported by the functions that read them: the hook
# asks this module only for its event table and answer shape, at every prompt and tool call.
TYPE_CHECKING = False  # typing and pathlib stay off the send path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from relay.agents.adapter_protocol import Finding
    from relay.host.procinfo import ProcInfo
    from relay.store.contract import StoreAPI

NAME = "codex"

ANSWER_NOTE = ANSWER_NOTES[NAME]  # None: no messaging tool of its own (relay.agents.hook_protocol)

# Enough of a rollout's end to hold the current turn's start event; a turn's events are small.
TAIL_BYTES = 256 * 1024
_STARTED = b'"type":"task_started"'
_ENDED = (b'"type":"task_complete"', b'"type":"turn_aborted"')
# A binary taken straight from a GitHub release keeps its target-triple name.
_TRIPLE_ENDINGS = ("-musl", "-gnu", "-darwin")


def wake_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that resumes `session_id` headless with `prompt` (relay's nudge) as its one input."""
    return ["codex", "exec", "resume", session_id, "--json", "--", prompt]


def is_exec_run(argv: list[str]) -> bool:
    """Is this Codex command line a `codex exec` (alias `e`) run? Words after `--` are a prompt."""
    words = argv[1:]
    if "--" in words:
        words = words[: words.index("--")]
    return "exec" in words or "e" in words


def queue_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that queues `prompt` as the next user turn of an open session (never `--resume`)."""
    return ["codex", "queue", "--thread", session_id, "--message", prompt]


# ---------------------------------------------------------------- rollouts (discover, gc)


def sessions_root() -> "Path":
    """$RELAY_CODEX_SESSIONS, else ${CODEX_HOME:-~/.codex}/sessions."""
    from relay.host import transcripts

    return transcripts.config_root("RELAY_CODEX_SESSIONS", "CODEX_HOME", ".codex", "sessions")


def home_of(rollout: str) -> str | None:
    """The CODEX_HOME a live rollout belongs to: <home>/sessions/YYYY/MM/DD/rollout-*.jsonl."""
    sessions = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(rollout))))
    if os.path.basename(sessions) != "sessions":
        return None
    return os.path.dirname(sessions)


def rollout_id(path: str) -> str | None:
    """The session id (lower case) in a rollout's file name, rollout-<timestamp>-<uuid>.jsonl."""
    base = os.path.basename(path)
    if not (base.startswith("rollout-") and base.endswith(".jsonl")):
        return None
    candidate = base[:-6][-36:]
    return candidate.lower() if is_uuid(candidate) else None


def rollout_files(root: "Path", since: float) -> "Iterator[tuple[str, float]]":
    """(path, mtime) of `rollout-*.jsonl` at any depth under `root` changed since `since`.

    `codex exec resume` appends to the original file, so an old date directory can hold a live
    session: every directory is walked. Archived sessions are not sessions.
    """
    from relay.host import transcripts

    pending = [str(root)]
    while pending:
        for entry in transcripts.scan_dir(pending.pop()):
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "archived_sessions":
                    pending.append(entry.path)
            elif entry.name.startswith("rollout-") and entry.name.endswith(".jsonl"):
                mtime = transcripts.fresh_mtime(entry, since)
                if mtime is not None:
                    yield entry.path, mtime


def session_meta(path: str) -> tuple[str | None, str | None]:
    """(id, cwd) from a Codex rollout's first non-blank line, a `session_meta` event.

    The id is as written (callers check that it is a UUID)."""
    from relay.host import transcripts

    line = transcripts.first_line(path)
    if line is None:
        return None, None
    record = transcripts.json_object(line)
    payload = record.get("payload") if record and record.get("type") == "session_meta" else None
    if not isinstance(payload, dict):
        return None, None
    found = payload.get("id") or payload.get("session_id")
    cwd = payload.get("cwd")
    return (found if isinstance(found, str) else None), (cwd if isinstance(cwd, str) and cwd else None)


def is_subagent(path: str | None) -> bool:
    """True when the rollout's first line says a sub-agent thread (its payload's `source` is an
    object, where a session's is a string such as "exec")."""
    from relay.host import transcripts

    line = transcripts.first_line(path) if path else None
    if line is None:
        return False
    try:
        record = jsonlite.loads(line)
    except ValueError:
        return False
    payload = record.get("payload") if isinstance(record, dict) else None
    return isinstance(payload, dict) and isinstance(payload.get("source"), dict)


def turn_in_progress(rollout: str) -> bool:
    """Does the rollout's tail show a turn that started and has not ended? Unreadable: no.

    Codex 0.169 appends an `event_msg` of type `task_started` when a turn begins and
    `task_complete` (or `turn_aborted`) when it ends; the last `TAIL_BYTES` tell it cheaply."""
    from relay.host import transcripts

    tail = transcripts.read_tail(rollout, TAIL_BYTES)
    if tail is None:
        return False
    started = tail.rfind(_STARTED)
    return started >= 0 and all(tail.rfind(ended) < started for ended in _ENDED)


def recent_sessions(since: float) -> "Iterator[tuple[str | None, str | None, float]]":
    """(id, cwd, last activity) of each session whose rollout changed since `since`: the id from
    `session_meta` when it is a UUID, else from the file name."""
    for path, mtime in rollout_files(sessions_root(), since):
        found, cwd = session_meta(path)
        yield (found if is_uuid(found) else rollout_id(path)), cwd, mtime


def transcript_times() -> "Iterator[tuple[str, float]]":
    """(id, mtime) of every rollout on this machine, named by its file (none is opened)."""
    for path, mtime in rollout_files(sessions_root(), 0.0):
        named = rollout_id(path)
        if named:
            yield named, mtime


# ---------------------------------------------------------------- its processes


def is_codex(info: "ProcInfo") -> bool:
    """True for the Codex CLI's native process (not its `node` npm wrapper).

    The npm and Homebrew installs run a binary named `codex`; a binary taken straight from a
    GitHub release keeps its target-triple name (`codex-x86_64-unknown-linux-musl`).
    """
    name = info.name.lower().removesuffix(".exe")
    return name == "codex" or (name.startswith("codex-") and name.endswith(_TRIPLE_ENDINGS))


def codex_pids() -> list[int]:
    """Pids of the running Codex CLI processes (see is_codex)."""
    from relay.host import procinfo

    return procinfo.matching_pids(is_codex)


def codex_ancestor(pid: int | None = None) -> "ProcInfo | None":
    """The nearest ancestor of `pid` (default: this process) that is a Codex CLI process."""
    from relay.host import procinfo

    return procinfo.nearest_ancestor(is_codex, pid)


def _open_rollouts() -> "Iterator[tuple[int, str, str]]":
    """(pid, rollout path, session id) for every rollout a running Codex process holds open."""
    from relay.host import procinfo

    for pid in codex_pids():
        for path in procinfo.open_files(pid):
            found = rollout_id(path)
            if found:
                yield pid, path, found


def live_sessions() -> set[str]:
    """Ids (lower case) of the sessions whose rollout a running Codex process holds open, from one
    scan of the processes."""
    return {found for _, _, found in _open_rollouts()}


def hosts(session_id: str) -> list[tuple[int, list[str], str]]:
    """(pid, argv, rollout path) of each running Codex process holding `session_id`'s rollout open:
    the process that hosts the session (the TUI's app-server daemon, a `--no-daemon` TUI, or a
    `codex exec` run), for callers that must know which kind it is."""
    from relay.host import procinfo

    wanted = session_id.lower()
    return [(pid, procinfo.command_line(pid), path) for pid, path, found in _open_rollouts() if found == wanted]


def is_live(session_id: str) -> bool:
    """A running Codex process holds `session_id`'s (lower case) rollout file open."""
    return session_id in live_sessions()


# ---------------------------------------------------------------- which session an MCP server serves


class CodexSession(Record):
    """A Codex session id, its project dir when known, and how both were found."""

    __slots__ = ("cwd", "session_id", "source")
    session_id: str
    cwd: str | None
    source: str

    def __init__(self, session_id: str, cwd: str | None, source: str) -> None:
        self._fields(session_id=session_id, cwd=cwd, source=source)


def _writer_lock_id(path: str) -> str | None:
    """The session id of a Codex writer lock, .../thread-writer-locks/<uuid>.lock."""
    folder, base = os.path.split(path)
    candidate = base.removesuffix(".lock")
    if os.path.basename(folder) != "thread-writer-locks" or candidate == base or not is_uuid(candidate):
        return None
    return candidate.lower()


def id_from_meta(meta: object) -> str | None:
    """The session id in a Codex `tools/call` `_meta` object, or None when there is none.

    Looks at `sessionId`, then `threadId`, then `x-codex-turn-metadata.session_id` / `thread_id`;
    only a UUID is accepted (anything else could be planted text).
    """
    if not isinstance(meta, dict):  # decoded JSON: an object is a dict
        return None
    turn = meta.get("x-codex-turn-metadata")
    turn = turn if isinstance(turn, dict) else {}
    for value in (
        meta.get("sessionId"),
        meta.get("threadId"),
        turn.get("session_id"),
        turn.get("thread_id"),
    ):
        if is_uuid(value):
            return str(value).lower()
    return None


def open_sessions(pid: int) -> dict[str, str | None]:
    """Session ids whose rollout or writer lock `pid` holds open -> the rollout path (or None)."""
    from relay.host import procinfo

    found: dict[str, str | None] = {}
    for path in sorted(procinfo.open_files(pid)):
        rollout = rollout_id(path)
        if rollout:
            found[rollout] = path
            continue
        lock = _writer_lock_id(path)
        if lock:
            found.setdefault(lock, None)
    return found


def _rollout_cwd(path: str | None) -> str | None:
    if not path:
        return None
    _, cwd = session_meta(path)
    return cwd


_MY_CODEX: "list[ProcInfo | None]" = []


def _my_codex() -> "ProcInfo | None":
    """This process's Codex ancestor, looked up once: a process's ancestry does not change while
    its parent lives (and an MCP server ends with its client). Saves the `ps` walk per tool call
    on macOS."""
    if not _MY_CODEX:
        _MY_CODEX.append(codex_ancestor())
    return _MY_CODEX[0]


def _codex_of(pid: int | None) -> "ProcInfo | None":
    if os.environ.get("RELAY_NO_ANCESTRY"):
        return None
    return _my_codex() if pid is None else codex_ancestor(pid)


def from_ancestor(pid: int | None = None) -> CodexSession | None:
    """The session of the nearest Codex ancestor of `pid` (default: this process), if one is clear.

    When the Codex process holds several sessions open (sub-agents), the one that is not a
    sub-agent wins; if that still leaves more than one, the answer is None rather than a guess.
    """
    from relay.host import procinfo

    codex = _codex_of(pid)
    if codex is None:
        return None
    sessions = open_sessions(codex.pid)
    if len(sessions) > 1:
        sessions = {sid: path for sid, path in sessions.items() if not is_subagent(path)}
    if len(sessions) != 1:
        return None
    [(session_id, path)] = sessions.items()
    cwd = _rollout_cwd(path) or procinfo.process_cwd(codex.pid)
    return CodexSession(session_id, cwd, f"session files held open by codex pid {codex.pid}")


def resolve(meta: object = None, pid: int | None = None) -> CodexSession | None:
    """The Codex session this server serves: from the call's `_meta`, else from its ancestry.

    `meta` is the `params._meta` of the current `tools/call` (None outside a call). The cwd is
    filled from the Codex ancestor when it has that session's rollout open, else its current dir.
    """
    from relay.host import procinfo

    session_id = id_from_meta(meta)
    if session_id is None:
        return from_ancestor(pid)
    codex = _codex_of(pid)
    cwd = None
    if codex is not None:
        path = open_sessions(codex.pid).get(session_id)
        cwd = _rollout_cwd(path) or procinfo.process_cwd(codex.pid)
    return CodexSession(session_id, cwd, "Codex tools/call _meta.sessionId")


# ---------------------------------------------------------------- relay doctor: is the plugin installed so it works?
#
# Codex installs the plugin from the clone with `codex plugin marketplace add <clone>` and `codex
# plugin add <id>`, which copies it into $CODEX_HOME/plugins/cache/: Codex runs that copy until the
# plugin is added again. It holds the plugin's hooks for review until the user trusts them, and
# skips untrusted ones, so none of its sessions registers. Read from its config.toml and cache.

TRUST_HOOKS = 'type /hooks and choose "Trust all and continue"'


def home() -> "Path":
    """$CODEX_HOME, else ~/.codex."""
    from relay.host import transcripts

    return transcripts.config_home("CODEX_HOME", ".codex")


def _config() -> "tuple[dict[str, Any] | None, str]":
    """Codex's config.toml as a dict ({} when there is none), or None and why it cannot be read."""
    import tomllib

    from relay.agents.install_files import read_small

    path = home() / "config.toml"
    if not path.exists():
        return {}, ""
    data = read_small(path)
    if data is None:
        return None, "cannot be read"
    try:
        return tomllib.loads(data.decode("utf-8")), ""
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        return None, f"does not parse ({err})"


def shell_reaches_store(store_home: str, cwd: str, on_disk: bool = True) -> bool:
    """Can a shell command the model runs in its Codex sandbox write the store? Codex's default
    sandbox (`workspace-write`) lets commands write only under the session's dir, /tmp and $TMPDIR
    and the `writable_roots` of [sandbox_workspace_write] in config.toml, and reach no network
    unless `network_access` is true; `danger-full-access` lets them do anything, `read-only`
    nothing. A store elsewhere (`on_disk` False: on Redis, over the network) would make a `relay`
    command in a hint fail there, though the MCP tools, run by Codex itself, still work."""
    config, _ = _config()
    config = config or {}
    mode = config.get("sandbox_mode", "workspace-write")
    if mode == "danger-full-access":
        return True
    if mode != "workspace-write":
        return False
    table = config.get("sandbox_workspace_write")
    table = table if isinstance(table, dict) else {}
    if not on_disk:
        return table.get("network_access") is True
    roots = [cwd]
    if table.get("exclude_slash_tmp") is not True:
        roots.append("/tmp")
    if table.get("exclude_tmpdir_env_var") is not True and os.environ.get("TMPDIR"):
        roots.append(os.environ["TMPDIR"])
    extra = table.get("writable_roots")
    roots += [r for r in extra if isinstance(r, str)] if isinstance(extra, list) else []
    target = os.path.realpath(store_home)
    for root in roots:
        real = os.path.realpath(os.path.expanduser(root))
        if root.startswith(("/", "~")) and (target == real or target.startswith(real.rstrip("/") + "/")):
            return True
    return False


def cached_copy() -> "Path | None":
    """The copy Codex runs: $CODEX_HOME/plugins/cache/<marketplace>/<plugin>/<version>/ (newest)."""
    from relay.agents.install_files import MARKETPLACE, PLUGIN

    versions = home() / "plugins" / "cache" / MARKETPLACE / PLUGIN
    try:
        copies = [entry for entry in versions.iterdir() if entry.is_dir()]
    except OSError:
        return None
    return max(copies, key=lambda entry: entry.stat().st_mtime, default=None)


def _snake(event: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(event))


def hook_keys(copy: "Path") -> list[str]:
    """The keys under which Codex 0.169 records trust in config.toml's [hooks.state] for a plugin
    copy's hooks: `<plugin id>:<hooks file>:<event in snake case>:<group>:<handler>`."""
    from relay.agents.install_files import PLUGIN_ID, read_json, table

    manifest = read_json(copy / ".codex-plugin" / "plugin.json")
    hooks_file = manifest.get("hooks") if isinstance(manifest, dict) else None
    if not isinstance(hooks_file, str):
        return []
    relative = os.path.normpath(hooks_file).replace(os.sep, "/")
    events = table(read_json(copy / relative), "hooks")
    keys = []
    for event, groups in events.items():
        for g, group in enumerate(groups if isinstance(groups, list) else []):
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for h, _ in enumerate(handlers if isinstance(handlers, list) else []):
                keys.append(f"{PLUGIN_ID}:{relative}:{_snake(event)}:{g}:{h}")
    return keys


def hook_trust() -> "list[Finding]":
    """Are the plugin's Codex hooks trusted? Untrusted, Codex never runs them: no session registers."""
    from relay.agents.install_files import PLUGIN, PLUGIN_ID, table

    config, why = _config()
    path = home() / "config.toml"
    if config is None:
        return [("WARN", f"Codex hooks: {path} {why}, so their trust is unknown", "")]
    entry = table(config, "plugins").get(PLUGIN_ID)
    copy = cached_copy()
    if entry is None and copy is None:
        return [("PASS", f"Codex hooks: {PLUGIN} is not installed in Codex ({home()}), nothing to trust", "")]
    if isinstance(entry, dict) and entry.get("enabled") is False:
        return [("WARN", f'Codex hooks: {PLUGIN} is disabled in {path} ([plugins."{PLUGIN_ID}"] enabled = false)', "")]
    if copy is None:
        return [("WARN", f"Codex hooks: Codex's copy of {PLUGIN} is missing from {home()}", reinstall(None))]
    keys = hook_keys(copy)
    if not keys:
        return [("WARN", f"Codex hooks: no hooks found in Codex's copy of {PLUGIN} ({copy})", reinstall(None))]
    states = table(config, "hooks", "state")
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


def reinstall(root: "Path | None") -> str:
    """The commands that make Codex run the checkout `root` (None: re-add what its marketplace holds).

    Codex copies the plugin into its cache at `codex plugin add`; adding it again refreshes the copy."""
    from shlex import join

    from relay.agents.install_files import MARKETPLACE, PLUGIN_ID, table

    config, _ = _config()
    source = table(config or {}, "marketplaces", MARKETPLACE).get("source")
    steps = []
    if root is not None and (not isinstance(source, str) or os.path.realpath(source) != str(root)):
        if isinstance(source, str):
            steps.append(["codex", "plugin", "marketplace", "remove", MARKETPLACE])
        steps.append(["codex", "plugin", "marketplace", "add", str(root)])
    steps.append(["codex", "plugin", "add", PLUGIN_ID])
    return " && ".join(join(words) for words in steps)


def runs_checkout(root: "Path | None") -> "list[Finding]":
    """Does Codex run what this checkout holds? It runs its cached copy until `codex plugin add` again."""
    from relay.agents.install_files import PLUGIN, PLUGIN_ID, compare, table

    config, _ = _config()
    copy = cached_copy()
    if copy is None or (config is not None and PLUGIN_ID not in table(config, "plugins")):
        return [("PASS", f"Codex: {PLUGIN} is not installed ({home()}), nothing to compare", "")]
    if root is None:
        return [("PASS", "Codex: this relay runs without a plugin dir, nothing to compare", "")]
    return [compare("Codex", copy, root, reinstall(root))]


def doctor_findings(store: "StoreAPI", root: "Path | None") -> "list[Finding]":
    """Codex's install checks: are its hooks trusted, and does it run this checkout?"""
    return hook_trust() + runs_checkout(root)
