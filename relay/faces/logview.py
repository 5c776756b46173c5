"""`relay log`: the journal for a person (docs/journal.md), read through relay.usecases.journal.events.

On a terminal each event is one line, `HH:MM:SS  from → to  event  body…`, cut to the terminal's
width and coloured by event; in a pipe the same lines whole and plain; with --json one object per
line. --follow then polls the journal (every POLL seconds) and prints what is new until Ctrl-C.
"""

import os
import sys
import time

from relay.faces.argv import Parsed
from relay.faces.command_table import LOG_LIMIT
from relay.usecases import journal
from relay.util.errors import UsageError
from relay.util.textsafe import LINE_BREAKS, one_line

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI
    from relay.store.files import Message

POLL = 0.4  # seconds between two reads of --follow: new events show within a second
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
COLOURS = {"sent": "36", "delivered": "32", "replied": "35", "woken": "33", "wake-refused": "31", "renamed": "34"}
EVENT_WIDTH = max(len(name) for name in journal.EVENTS)
PAIR_WIDTH = 16  # `from → to` is padded to this, so most events line up


def duration(raw: str) -> float:
    """--since's value in seconds: a whole number with an optional unit s, m, h or d (90s, 15m, 2h, 3d)."""
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in UNITS else (raw, "s")
    if not number.isdigit() or len(number) > 9 or int(number) == 0:
        raise UsageError(f"--since needs a duration such as 90s, 15m, 2h or 3d, not {raw[:40]!r}")
    return int(number) * UNITS[unit]


def _limit(raw: str | None) -> int:
    if raw is None:
        return LOG_LIMIT
    if not raw.isdigit() or len(raw) > 9 or int(raw) == 0:
        raise UsageError(f"--limit needs a whole number above 0, not {raw[:40]!r}")
    return int(raw)


def _filter(store: "StoreAPI", parsed: Parsed) -> journal.Filter:
    options = parsed.options
    since = time.time() - duration(options["--since"]) if "--since" in options else None
    thread = options.get("--thread")
    if thread is not None and (not thread or any(c not in "0123456789abcdefABCDEF-" for c in thread)):
        raise UsageError(f"--thread needs a message id (or its first characters), not {thread[:40]!r}")
    session = options.get("--session")
    if session is not None and not session.strip():
        raise UsageError("--session needs a session name or id")
    ids, names = journal.session_filter(store, session) if session else (None, None)
    return journal.Filter(since=since, thread=thread, ids=ids, names=names)


class Printer:
    """Writes events as lines for a person or as JSON, flushing after each batch."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        out = sys.stdout
        self.tty = out.isatty()
        self.colour = self.tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.arrow = "→" if (out.encoding or "").lower().replace("-", "").startswith("utf8") else "->"

    def width(self) -> int | None:
        if not self.tty:
            return None
        try:
            return max(os.get_terminal_size(sys.stdout.fileno()).columns, 20)
        except OSError:
            return 80

    def line(self, event: "Message", width: int | None) -> str:
        """One event as `HH:MM:SS  from → to  event  text`, cut to `width` (the whole line without)."""
        stamp = journal.epoch(event.get("ts"))
        clock = time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "--:--:--"
        kind = str(event.get("event") or "?")
        text = _text(event)
        pair = f"{_who(event, 'from')} {self.arrow} {_who(event, 'to')}"
        head = f"{clock}  {pair:<{PAIR_WIDTH}}  "
        shown = f"{kind:<{EVENT_WIDTH}}"
        line = head + shown + (f"  {text}" if text else "")
        if width is not None and len(line) > width:
            line = line[: width - 1] + "…"
        if self.colour and kind in COLOURS:
            cut = line[len(head) : len(head) + len(shown)]
            line = f"{line[: len(head)]}\x1b[{COLOURS[kind]}m{cut}\x1b[0m{line[len(head) + len(shown) :]}"
        return line

    def show(self, events: "list[Message]") -> None:
        if not events:
            return
        if self.as_json:
            from relay.util.jsonlite import encode

            data = b"".join(encode(event, False) + b"\n" for event in events)
        else:
            width = self.width()
            data = "".join(self.line(event, width) + "\n" for event in events).encode(
                sys.stdout.encoding or "utf-8", "replace"
            )
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _who(event: "Message", side: str) -> str:
    """A side of an event as a person knows it: the name, else the id's first 8 characters."""
    name, ident = event.get(f"{side}Name"), event.get(side)
    if name:
        return one_line(str(name))
    if ident:
        return one_line(str(ident)[:8])
    return "relay" if side == "from" else "-"


def _text(event: "Message") -> str:
    """The body (its line breaks shown as ⏎), with the detail in parentheses after it."""
    body, detail = event.get("body"), event.get("detail")
    parts = []
    if isinstance(body, str) and body:
        body = body.replace("\r\n", "\n")
        for brk in LINE_BREAKS:
            body = body.replace(brk, " ⏎ ")
        parts.append(one_line(body))
    if detail:
        parts.append(f"({one_line(str(detail))})" if parts else one_line(str(detail)))
    return " ".join(parts)


def main(store: "StoreAPI", parsed: Parsed) -> int:
    """`relay log`: the last N events the filters let through, oldest first; with --follow the new
    ones too until Ctrl-C (exit 0)."""
    limit = _limit(parsed.options.get("--limit"))
    wanted = _filter(store, parsed)
    printer = Printer("--json" in parsed.flags)
    follow = "--follow" in parsed.flags
    events, cursor = journal.events(store, None, wanted)
    if not events and not follow and not printer.as_json:
        days = journal.journal_days()
        print("no events" if days else "no events: the journal is off (RELAY_JOURNAL_DAYS=0)")
        return 0
    printer.show(events[-limit:])
    if not follow:
        return 0
    from relay.faces.boundary import long_lived

    long_lived()
    try:
        while True:
            time.sleep(POLL)
            events, cursor = journal.events(store, cursor, wanted)
            printer.show(events)
    except KeyboardInterrupt:
        return 0
