"""`relay <command>`: dispatch to the hook, the MCP server, the demo or a people command.

Only the chosen command's modules are imported, because the hook runs at every session start.
Every failure ends as one line on stderr: exit 1 for errors, 2 for usage errors. The line is
made safe for a terminal (it may quote a planted name or path), and an unexpected error leaves its
traceback in `<home>/error.log`, which the line names.
"""

import os
import sys

from relay import __version__
from relay.errors import RelayError, describe_os_error

_FACES = {
    "hook": (
        "run by the agent CLI at session start, each prompt, after tool calls, at turn end and session end: "
        "registers the session, prints the mail its deliver mode lets through; `hook watch` is Claude's "
        "idle-mail watcher"
    ),
    "bus": "the MCP stdio server (tools whoami, register, roster, send, inbox, discover, status, wait)",
    "demo": "show the whole relay at work in a throwaway store",
}


def _usage() -> str:
    from relay.commands import SPECS

    lines = [
        f"relay {__version__}: a message bus between Claude Code and Codex sessions on this machine",
        "",
        "usage: relay <command> [options]   (relay <command> --help for details)",
        "",
    ]
    for name, spec in SPECS.items():
        lines.append(f"  {name:<9} {spec.summary}")
    for name in ("hook", "bus", "demo"):
        lines.append(f"  {name:<9} {_FACES[name]}")
    lines += ["", "Store: $AGENT_RELAY_HOME (default ~/.agent-relay). Everything after -- is the message, verbatim."]
    return "\n".join(lines)


def long_lived() -> None:
    """A face that runs for a whole session: the garbage collector `python -m relay` turned off
    for start-up goes back on."""
    import gc

    gc.enable()


def _fail(message: str, code: int) -> int:
    from relay.textsafe import one_line

    line = message if message.startswith("session-relay:") else f"relay: {message}"
    sys.stderr.write(one_line(line) + "\n")
    return code


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("-V", "--version"):
        print(f"relay {__version__}")
        return 0
    if command in _FACES and rest[:1] in (["-h"], ["--help"]):
        arguments = " [codex | watch]" if command == "hook" else ""
        print(f"usage: relay {command}{arguments}\n{_FACES[command]}")
        return 0
    if command == "hook":
        from relay import hook

        return hook.main(rest)
    if command in ("bus", "demo"):
        if rest:
            return _fail(f"{command} takes no arguments; see relay {command} --help", 2)
        long_lived()
        if command == "bus":
            from relay import bus

            return bus.main(rest)
        from relay import demo

        return demo.main()
    from relay.argv import parse
    from relay.commands import HANDLERS, SPECS

    if command not in SPECS:
        return _fail(f"unknown command {command!r}; run relay --help for the list", 2)
    parsed = parse(command, SPECS[command], rest)
    if parsed.help:
        print(f"usage: {SPECS[command].usage}\n{SPECS[command].summary}")
        return 0
    from relay.store import Store

    return HANDLERS[command](Store(), parsed)


def main(argv: list[str] | None = None) -> int:
    """The console entry point."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = _run(args)
        sys.stdout.flush()
        return code
    except RelayError as err:
        return _fail(str(err), err.exit_code)
    except BrokenPipeError:
        # The reader went away (e.g. `relay list | head`): stop quietly, and point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        return _fail(describe_os_error(err), 1)
    except Exception as err:  # anything else still ends as one line; the traceback goes to the error log
        from relay import errorlog

        return _fail(errorlog.unexpected(f"cli {args[0] if args else ''}", err), 1)
