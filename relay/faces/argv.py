"""A small, exact command-line parser for the relay's subcommands.

argparse is not used because the command line (docs/cli.md) needs two things it does not do reliably: everything after
a bare `--` is the message verbatim (even words that look like flags), and a flag's value is the
next argument as given (even `--config=evil`, which the UUID check then refuses by name).
"""

from relay.util.errors import UsageError


class Spec:
    """One command's row of the command table (relay.faces.command_table): its usage and summary,
    the name of its handler in relay.faces.commands, its options, named positionals and whether it
    takes message words.

    `options` maps each option to (METAVAR, meaning, default) for --help; an empty METAVAR makes
    it a flag, any other an option that takes a value. A plain class, not a dataclass: importing
    dataclasses pulls inspect, re and typing into every short-lived command."""

    __slots__ = ("flags", "handler", "message", "options", "positionals", "summary", "usage", "values")

    def __init__(
        self,
        usage: str,
        summary: str,
        handler: str,
        options: dict[str, tuple[str, str, str]] | None = None,
        positionals: tuple[str, ...] = (),
        message: bool = False,
    ) -> None:
        self.usage, self.summary, self.handler = usage, summary, handler
        self.options = options or {}
        self.values = tuple(name for name, (metavar, _, _) in self.options.items() if metavar)
        self.flags = tuple(name for name, (metavar, _, _) in self.options.items() if not metavar)
        self.positionals, self.message = positionals, message


class Parsed:
    """The parsed command line: option values, flags seen, positionals, and message words."""

    __slots__ = ("flags", "help", "options", "positionals", "words")

    def __init__(self) -> None:
        self.options: dict[str, str] = {}
        self.flags: set[str] = set()
        self.positionals: list[str] = []
        self.words: list[str] = []
        self.help = False

    @property
    def message(self) -> str | None:
        """The message words joined by single spaces, or None when there are none."""
        return " ".join(self.words) if self.words else None


def parse(command: str, spec: Spec, argv: list[str]) -> Parsed:
    """Parse `argv` (the words after the command name) against `spec`.

    `-h`/`--help` anywhere before `--` (and not taken as an option's value) asks for help and wins
    over every other problem on the line, so a half-typed command can always show its help."""
    parsed = Parsed()
    if "--" in argv:
        cut = argv.index("--")
        before, after = argv[:cut], argv[cut + 1 :]
    else:
        before, after = argv, []
    problem: str | None = None
    extra: list[str] = []
    index = 0
    while index < len(before):
        word = before[index]
        index += 1
        if word in ("-h", "--help"):
            parsed.help = True
            continue
        if word.startswith("-") and word != "-":
            name, has_value, value = word.partition("=")
            if name in spec.values:
                if not has_value:
                    if index >= len(before):
                        problem = problem or f"{name} needs a value"
                        continue
                    value = before[index]
                    index += 1
                parsed.options[name] = value
            elif name in spec.flags and not has_value:
                parsed.flags.add(name)
            else:
                hint = " (put the message after --)" if spec.message else ""
                problem = problem or f"unknown option {word}{hint}"
            continue
        if len(parsed.positionals) < len(spec.positionals):
            parsed.positionals.append(word)
        else:
            extra.append(word)
    if parsed.help:
        return parsed
    if problem is None and extra and not spec.message:
        problem = f"unexpected argument {extra[0]!r}"
    if problem is None and after and not spec.message:
        problem = "takes no message"
    if problem is not None:
        raise UsageError(f"{command}: {problem}; usage: {spec.usage}")
    parsed.words = extra + after
    return parsed
