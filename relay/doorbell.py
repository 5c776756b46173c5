"""`relay wake`: resume an idle session headless so it reads its mail.

The command runs with no shell, from the target's project dir, with the message always the
single last argument after `--`, so no text and no id can become an option of the agent CLI.
"""

import os
import shutil
from typing import Any

from relay.errors import RelayError
from relay.ids import require_uuid
from relay.sessions import launcher_command

# Variables that describe the *calling* session; the woken CLI must not inherit them (a nested
# Claude Code refuses to start while CLAUDECODE is set, and would take the caller's identity).
_CALLER_SCOPED = (
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PROJECT_DIR",
    "RELAY_PROJECT_DIR",
)


# Fixed options of the woken Claude (SPEC §9), tried against the real Claude Code 2.1.197:
# - `claude -p` denies MCP tools nobody allowed; the server-wide rule lets the woken session call every
#   tool of the plugin's bus (`inbox` to read, `send` to answer) and nothing else.
# - In `-p` mode Claude connects MCP servers in the background, so a bus that starts slowly (a loaded
#   machine, a cold start) is missing from the first model request. MCP_CONNECTION_NONBLOCKING=0 makes
#   Claude wait for its servers first, but only MCP_CONNECT_TIMEOUT_MS (default 5 s) long.
CLAUDE_WAKE_OPTIONS = (
    "--allowedTools",
    "mcp__plugin_session-relay_bus",
    "--settings",
    '{"env":{"MCP_CONNECTION_NONBLOCKING":"0","MCP_CONNECT_TIMEOUT_MS":"30000"}}',
)


def default_nudge(session_id: str) -> str:
    """The message sent when the caller gives none."""
    return (
        "You have session-relay mail. Call the session-relay `inbox` tool (or run "
        f"`{launcher_command()} inbox {session_id}`) to read it, then act on it as you see fit."
    )


def command(tool: str, session_id: str, message: str) -> list[str]:
    """The exact argv that resumes `session_id` with `message`."""
    session_id = require_uuid(session_id)
    if tool == "claude":
        return ["claude", "-p", "--resume", session_id, "--output-format", "json", *CLAUDE_WAKE_OPTIONS, "--", message]
    if tool == "codex":
        return ["codex", "exec", "resume", session_id, "--json", "--", message]
    raise RelayError(f"invalid tool {tool!r}: use claude or codex")


def plan(tool: str, session_id: str, directory: str | None, message: str | None) -> dict[str, Any]:
    """What `wake` will run: {tool, cmd, args, cwd}."""
    argv = command(tool, session_id, message or default_nudge(session_id))
    if not directory:
        raise RelayError(
            f"session {session_id} has no known project dir: wake it with "
            "--id ID --dir DIR --tool claude|codex (relay discover shows its dir)"
        )
    return {"tool": tool, "cmd": argv[0], "args": argv[1:], "cwd": directory}


def _is_locale_var(name: str) -> bool:
    return name in ("LANG", "LANGUAGE") or name.startswith("LC_")


def initial_environment() -> dict[str, str] | None:
    """The environment this process was started with (Linux), before anything changed it.

    Run from source, CPython may coerce LC_CTYPE at start-up (PEP 538), so os.environ no longer
    shows the caller's locale; /proc/self/environ still does.
    """
    try:
        with open("/proc/self/environ", "rb") as handle:
            items = handle.read().split(b"\0")
    except OSError:
        return None
    pairs = (item.decode("utf-8", "surrogateescape").partition("=") for item in items)
    return {name: value for name, sep, value in pairs if sep}


def _original_locale(environ: dict[str, str], initial: dict[str, str] | None) -> dict[str, str] | None:
    """The caller's locale variables, if this process changed them and their old values are known.

    The frozen binary runs under LC_ALL=C and saves the caller's values in RELAY_ORIG_LOCALE
    (newline-separated NAME=VALUE); otherwise `initial` is the process's starting environment.
    """
    saved = environ.get("RELAY_ORIG_LOCALE")
    if saved is not None:
        pairs = (item.partition("=") for item in saved.split("\n"))
        return {name: value for name, sep, value in pairs if sep and _is_locale_var(name)}
    if initial is None:
        return None
    return {name: value for name, value in initial.items() if _is_locale_var(name)}


def child_environment(environ: dict[str, str], initial: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment for the agent CLI: its original locale, no caller-scoped variables."""
    env = {k: v for k, v in environ.items() if k not in _CALLER_SCOPED and k != "RELAY_ORIG_LOCALE"}
    original = _original_locale(environ, initial)
    if original is not None:
        for name in [k for k in env if _is_locale_var(k)]:
            del env[name]
        env.update(original)
    return env


def ring(planned: dict[str, Any]) -> None:
    """Replace this process with the agent CLI, so its output and exit status are the caller's."""
    directory = planned["cwd"]
    if not os.path.isdir(directory):
        raise RelayError(
            f"the session's dir {directory} does not exist (the session moved or is stale): "
            "re-register it with `relay register NAME --id ID --dir NEWDIR`, or wake it with --id/--dir/--tool"
        )
    env = child_environment(dict(os.environ), initial_environment())
    program = shutil.which(planned["cmd"], path=env.get("PATH"))
    if program is None:
        raise RelayError(f"`{planned['cmd']}` is not on PATH: install it, or add its directory to PATH")
    os.chdir(directory)
    os.execve(program, [planned["cmd"], *planned["args"]], env)
