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

# Which session an MCP server serves (relay.agents.codex_session: every server asks, in any CLI).
from relay.agents.codex_session import CodexSession as CodexSession
from relay.agents.codex_session import codex_ancestor as codex_ancestor
from relay.agents.codex_session import from_ancestor as from_ancestor
from relay.agents.codex_session import id_from_meta as id_from_meta
from relay.agents.codex_session import is_codex as is_codex
from relay.agents.codex_session import is_subagent as is_subagent
from relay.agents.codex_session import open_sessions as open_sessions
from relay.agents.codex_session import resolve as resolve
from relay.agents.codex_session import rollout_id as rollout_id
from relay.agents.codex_session import session_meta as session_meta
from relay.agents.hook_protocol import ANSWER_NOTES
from relay.agents.hook_protocol import EVENTS as EVENTS  # this CLI speaks Claude's hook protocol
from relay.agents.hook_protocol import hook_output as hook_output
from relay.domain.ids import is_uuid

# relay.host's procinfo and transcripts are imported by the functions that read them: the hook
# asks this module only for its event table and answer shape, at every prompt and tool call.
TYPE_CHECKING = False  # typing and pathlib stay off the send path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from relay.agents.adapter_protocol import Finding
    from relay.store.contract import StoreAPI

NAME = "codex"

ANSWER_NOTE = ANSWER_NOTES[NAME]  # None: no messaging tool of its own (relay.agents.hook_protocol)

# Enough of a rollout's end to hold the current turn's start event; a turn's events are small.
TAIL_BYTES = 256 * 1024
_STARTED = b'"type":"task_started"'
_ENDED = (b'"type":"task_complete"', b'"type":"turn_aborted"')


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


def codex_pids() -> list[int]:
    """Pids of the running Codex CLI processes (see is_codex)."""
    from relay.host import procinfo

    return procinfo.matching_pids(is_codex)


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
