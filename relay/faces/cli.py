"""`relay <command>`: dispatch to the hook, the MCP server, the demo or a people command.

Only the chosen command's modules are imported, because the hook runs at every session start.
Every failure ends as one line on stderr: exit 1 for errors, 2 for usage errors. The line is
made safe for a terminal (it may quote a planted name or path), and an unexpected error leaves its
traceback in `<home>/error.log`, which the line names.
"""

import sys

from relay import __version__
from relay.util.errors import UsageError

# The commands that are not people commands (relay.faces.command_table): they parse their own arguments.
_FACES = ("hook", "bus", "demo", "version")
_HELP = ("-h", "--help")


def _help_asked(words: list[str]) -> bool:
    """Whether -h/--help is among `words` before a bare `--` (after it, words are a message)."""
    before = words[: words.index("--")] if "--" in words else words
    return any(word in _HELP for word in before)


def _help(words: list[str]) -> int:
    """`relay help [COMMAND]`: the command list, or one command's whole help.

    relay.faces.helptext is imported here only: its text costs nothing to a command that asks no help."""
    from relay.faces import helptext

    if not words:
        print(helptext.listing())
        return 0
    topic = helptext.topic_of(words)
    if topic is None:
        raise UsageError(f"no command {' '.join(words)!r} (see relay help for the list)")
    print(helptext.render(topic))
    return 0


def _fail(message: str, code: int) -> int:
    from relay.faces.boundary import say

    say("" if message.startswith("session-relay:") else "relay: ", message)
    return code


def _run(argv: list[str]) -> int:
    if not argv:
        return _help([])
    command, rest = argv[0], argv[1:]
    if command in (*_HELP, "help"):
        words = [word for word in rest if word not in _HELP]
        return _help(words or (["help"] if command == "help" and rest else []))
    if command in ("-V", "--version"):
        command = "version"
    if command in _FACES:
        if _help_asked(rest):
            return _help(["hook", "watch"] if command == "hook" and rest[:1] == ["watch"] else [command])
        return _face(command, rest)
    from relay.faces.argv import parse
    from relay.faces.command_table import SHAPES

    if command not in SHAPES:
        return _fail(f"unknown command {command!r}; run relay --help for the list", 2)
    try:
        parsed = parse(command, SHAPES[command], rest)
        if parsed.help:
            return _help([command])
        from relay.faces.commands import HANDLERS
        from relay.store.contract import open_store

        return HANDLERS[command](open_store(), parsed)
    except UsageError as err:
        raise UsageError(f"{err} (see relay {command} --help)") from None


def _face(command: str, rest: list[str]) -> int:
    """hook, bus, demo and version: each takes the words it knows and nothing else."""
    if command == "hook":
        from relay.faces import hook

        return hook.main(rest)
    if rest:
        raise UsageError(f"{command} takes no arguments (see relay {command} --help)")
    if command == "version":
        print(f"relay {__version__}")
        return 0
    from relay.faces.boundary import long_lived

    long_lived()
    if command == "bus":
        from relay.faces import bus

        return bus.main(rest)
    from relay.faces import demo

    return demo.main()


def main(argv: list[str] | None = None) -> int:
    """The console entry point."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = _run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (e.g. `relay list | head`): stop quietly, and point stdout at
        # /dev/null so the interpreter's final flush does not complain either. `posix`, not `os`:
        # --version imports no os (relay.__main__).
        import posix

        devnull = posix.open("/dev/null", posix.O_WRONLY)
        posix.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # every error ends as one line; an unexpected one's traceback goes to the error log
        from relay.faces.boundary import described

        return _fail(*described(f"cli {args[0] if args else ''}", err))
