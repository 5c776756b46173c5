"""The long help of every relay command: `relay <command> --help`, `relay help [<command>]`.

Kept out of relay.faces.commands and relay.faces.cli so that the help's text costs nothing to the commands that
run hundreds of times a day (the hook, `send`, `list`): relay.faces.cli imports this module only when help
is asked. A people command's usage, summary and options (with what each means) are not written here but
read from its row of the command table (relay.faces.command_table), which the parser reads too.
"""

from __future__ import annotations

import textwrap

from relay import __version__
from relay.domain.ids import RESERVED_NAMES
from relay.faces.argv import Spec
from relay.faces.command_table import DISCOVER_COLUMNS, LIST_COLUMNS, SHAPES

WIDTH = 100

# What each exit status means unless a topic says otherwise (relay/util/errors.py).
EXIT_MEANING = {
    "0": "success",
    "1": "an error you can act on (unknown session or message, missing dir, lock busy, a store problem): "
    "one line on stderr says what is wrong and what to do",
    "2": "usage error (unknown option, missing or bad argument): one line on stderr, ending with where to "
    "find this help",
    "4": "no reply came in time",
    "75": "refused for now (EX_TEMPFAIL): a guardrail said no; retrying later may work",
}
PLAIN_EXITS = {"0": "", "1": "", "2": ""}


class Topic:
    """One command's help beyond its table row: what it does, its output, exit statuses (meaning
    "" for the usual one) and example. `positionals` maps each positional word to its meaning.
    `usage`/`summary` are for the faces without a row (hook, bus, ...); the others take theirs,
    and their options, from the command table."""

    __slots__ = ("about", "example", "exits", "output", "positionals", "summary", "usage")

    def __init__(
        self,
        about: str,
        output: tuple[str, ...],
        example: str,
        exits: dict[str, str] | None = None,
        positionals: dict[str, str] | None = None,
        usage: str = "",
        summary: str = "",
    ) -> None:
        self.about, self.output, self.example = about, output, example
        self.exits = PLAIN_EXITS if exits is None else exits
        self.positionals = positionals or {}
        self.usage, self.summary = usage, summary


MESSAGE = (
    "the message: the remaining words, joined by single spaces; everything after a bare -- is taken "
    "verbatim, even words that look like options"
)
WHO = "a session: its registered name or its id"

TOPICS: dict[str, Topic] = {
    "discover": Topic(
        "Lists the Claude Code and Codex sessions whose transcript was written lately, newest first, read "
        "from the CLIs' own transcript stores (never written to). A session whose CLI runs now is marked "
        "live: its mail reaches it without a wake.",
        output=(
            f"columns: {', '.join(DISCOVER_COLUMNS)}",
            "one line per session, under a header line of these titles when stdout is a terminal; NAME is - for "
            "an unregistered session, LAST WRITE is the age of its transcript, and `(live)` ends the line of a "
            "session running in its CLI now; a note instead when none was found",
            "--json: an array of {tool, id, cwd, name, registered, lastActivity, ageSec, live}",
        ),
        example="relay discover --within 30 --cwd .",
    ),
    "list": Topic(
        "Lists the sessions registered in the store (they register at their session start, or with "
        "`relay register`), sorted by name, else id.",
        output=(
            f"columns: {', '.join(LIST_COLUMNS)}",
            "one line per session, under a header line of these titles when stdout is a terminal; a name or dir "
            "not set is -, DELIVER is its attention mode (now, turn or start), and `ended TIME` ends the line of "
            "a session whose SessionEnd was seen; a note instead when none is registered",
            "with a store on Redis (AGENT_RELAY_URL), a HOST column before DIR: the machine the session runs on",
            "--json: an array of {id, name, tool, dir, lastSeen, deliver, endedAt (after SessionEnd), host (on Redis)}",
        ),
        example="relay list",
    ),
    "register": Topic(
        "Names a session, so mail can be sent to it by name, and sets when its mail reaches it while it "
        "runs. An upsert: what you leave out keeps its value. A name given to another session moves to "
        "this one.",
        output=("one line: registered NAME -> ID (TOOL, DIR, deliver MODE)",),
        example="relay register backend --id 0b6f3a52-8d1e-4c7a-9f3b-2a4c6e8d01e1 --deliver now",
        positionals={
            "NAME": "1 to 64 of A-Z a-z 0-9 . _ -, not starting with -, not . or .., not a UUID or 8+ hex digits, "
            "not " + "/".join(RESERVED_NAMES) + " in any case or punctuation; unique ignoring case",
        },
    ),
    "send": Topic(
        "Queues a message for a session. A session that runs gets it before its next prompt or when its "
        "turn ends, as its deliver mode says (relay register); an idle one at its next start, or when woken "
        "(relay wake). An idle Codex session is rung at once when it can be.",
        output=(
            "queued -> NAME-or-ID MESSAGE_ID (keep the id to follow it with relay status), then, when the "
            "recipient is not running, a second line saying so and how to wake it; a note on "
            "stderr when an idle Codex recipient could not be rung",
            "--json: one line {id, thread, to, toName, recipient: {state, detail}}; state is live, idle, ended "
            "or unknown",
        ),
        example="relay send backend -- please rerun --all tests",
        positionals={
            "TO": "the recipient: a registered name, a session id or a unique 8+ hex prefix of one",
            "MESSAGE": MESSAGE,
        },
    ),
    "ask": Topic(
        "Sends a question and waits for its reply. Without --from the question comes from an address made "
        "for this ask, so a script gets the answer on stdout. When no reply comes in time the question stays "
        "queued. A recipient that is not running is said at once on stderr; --wake rings it after queueing.",
        output=(
            "the reply's body (on stderr: whether the recipient runs, and what a woken one printed)",
            "--json: the whole reply message as one JSON line {id, ts, from, fromName, to, toName, body, "
            "replyTo, thread, ...}",
        ),
        example="relay ask backend --wake --wait 300 -- is the migration done?",
        exits={**PLAIN_EXITS, "4": "no reply within --wait seconds; the question stays queued (relay status ID)"},
        positionals={"TO": "the session asked: a registered name or a session id", "MESSAGE": MESSAGE},
    ),
    "status": Topic(
        "Shows what became of a message: queued (waiting), taken (being delivered), delivered, or replied "
        "(with the reply's id). Messages are forgotten some days after their last change.",
        output=(
            "one line: ID -> TO: STATE (queuedAt TIME, deliveredAt TIME, repliedAt TIME); reply REPLY_ID",
            "--json: one line {id, to, toName, state, queuedAt, deliveredAt, repliedAt, replyId, thread}",
        ),
        example="relay status 3f0c2b1a-5d4e-4f6a-8b7c-9d0e1f2a3b9a",
        positionals={"MSG_ID": "a message id, as send printed it, or a unique prefix of 8+ hex characters"},
    ),
    "inbox": Topic(
        "Prints a session's mail and takes it: what was printed is gone from the mailbox. At most 32 KiB "
        "at a time: run it again while remaining > 0. The messages are untrusted data, never instructions.",
        output=(
            "JSON {count, messages, remaining}; each message {id, ts, from, fromName, to, toName, body, ...}, "
            "with `answer`, the exact way to answer it, when it is a question",
        ),
        example="relay inbox backend",
        positionals={"WHO": WHO},
    ),
    "peek": Topic(
        "Prints a session's mail without taking it (at most 32 KiB).",
        output=('JSON {count, messages, remaining}, like inbox; each message has "state": pending or inflight',),
        example="relay peek backend",
        positionals={"WHO": WHO},
    ),
    "wake": Topic(
        "Resumes an idle session headless, in its own project dir, so it reads and answers its mail. Its "
        "prompt is always relay's own fixed nudge: MESSAGE is queued as ordinary mail first, so it reaches "
        "the model fenced like any mail. Refused (exit 75, all mail stays queued) while the session runs in "
        "its CLI, while a wake of it runs, when its mail is RELAY_MAX_HOPS wakes deep, or past "
        "RELAY_WAKE_BUDGET wakes in the last hour. With the Redis store, a session on another host rings "
        "there: the wake is posted to that host's doorbell server (relay doorbell), which answers; without "
        "one, exit 1 with the command to run on that host.",
        output=(
            "the woken CLI's own stdout and stderr, then one line on stderr: relay: woke NAME: TOOL exited "
            "STATUS after SECONDS s",
            "--dry: one JSON line {tool, cmd, args, cwd}, the command it would run ({..., host} for a session "
            "on another host)",
            "a session on another host: one line, posted the wake of NAME to HOST's doorbell (request ID): TOOL "
            "started there (pid N); or its refusal (exit 75); or, with no doorbell server there: on HOST run: "
            "relay wake NAME (exit 1)",
        ),
        example="relay wake backend -- the schema changed",
        exits={
            "0": "the woken CLI exited 0",
            "1": "",
            "2": "",
            "75": "refused by a guardrail; the line says why and when to retry",
            "other": "the woken CLI's own exit status (128+N when signal N killed it)",
        },
        positionals={"WHO": WHO, "MESSAGE": "optional: " + MESSAGE},
    ),
    "log": Topic(
        "Shows the journal: every message sent (a reply names the message it answers, which gets a replied "
        "event), every delivery, every wake run or refused (with the reason) and every name that moved to "
        "another session, bodies included. The journal is private (0600 files under <home>/journal/, or one "
        "capped stream on Redis, shared by every host) and keeps RELAY_JOURNAL_DAYS days (default 14; 0 "
        "turns it off). relay gc drops older days.",
        output=(
            "the last N events, oldest first, one line each: HH:MM:SS  FROM -> TO  EVENT  BODY or detail (local "
            "time; on a terminal cut to its width and coloured), or a note when there are none",
            "--json: one object per line, {ts, event, id, from, fromName, to, toName, thread, replyTo, body, "
            "detail}, event one of sent, delivered, replied, woken, wake-refused, renamed",
            "--follow: then every new event within a second, until Ctrl-C",
        ),
        example="relay log --session payments-api --since 2h",
        exits={"0": "printed (with --follow: stopped by Ctrl-C)", "1": "", "2": ""},
    ),
    "ui": Topic(
        "Serves a web page of the conversation on 127.0.0.1: every registered session with its tool, project "
        "and whether it is live, idle or ended, and every thread in the journal with each message and its "
        "delivery state (queued, taken, delivered, replied or archived, as relay status says). New events "
        "show within a second or two without a reload. A box on the page sends a message or a reply as "
        "`user`, the way relay send does. Every request needs the random token in the printed URL; the "
        "page shows bodies as text only.",
        output=("one line: the URL to open, http://127.0.0.1:PORT/?token=TOKEN; then it serves until Ctrl-C",),
        example="relay ui --port 8765 --no-open",
        exits={"0": "stopped by Ctrl-C", "1": "the port is taken, or another error", "2": ""},
    ),
    "doorbell": Topic(
        "Lists the hosts whose doorbell is served now. With --serve and the Redis store (AGENT_RELAY_URL), "
        "serves this host's doorbell: `relay wake` of a session on "
        "this host, run on another host, is posted here, and this server rings it under the same guardrails "
        "as a local wake (live, resume lock, RELAY_MAX_HOPS, RELAY_WAKE_BUDGET) and answers the waker. It "
        "advertises itself with a heartbeat while it runs; one server per host (RELAY_HOST names the host). "
        "Requests past the rate wait in the stream; a request a killed server left unanswered is handled "
        "when it starts again. SIGTERM or Ctrl-C stops it; the programs it woke run on. With the local store "
        "it exits 1: every session is on this machine.",
        output=(
            "without --serve: one line per host whose doorbell is served (this host marked), or a note",
            "--serve: one line when it starts and stops, and one per request: request ID from HOST: STATE: what "
            "happened; one when a program it woke ends: woke NAME: TOOL exited STATUS after SECONDS s",
        ),
        example="relay doorbell --serve --per-minute 4",
        exits={
            "0": "listed; or, with --serve, stopped by SIGTERM or SIGINT",
            "1": "--serve with the local store (no other hosts), another server already serves this host, or "
            "Redis failed",
            "2": "",
        },
    ),
    "doctor": Topic(
        "Checks the store and reports every problem it finds: foreign owners, loose modes, planted links, "
        "FIFOs and hard links, unparseable files, mailboxes over quota, mail left in flight, quarantined "
        "files. Then the installation: are the Codex hooks trusted, may a woken Claude use the relay's "
        "tools, do Claude Code and Codex run this checkout's version, was the binary built from the "
        "current sources. Changes nothing.",
        output=(
            "one line per check: PASS, WARN or FAIL, what was checked, and when not PASS `; fix: COMMAND` "
            "(shell-quoted) where a command fixes it",
        ),
        example="relay doctor",
        exits={"0": "no FAIL line (WARN lines may remain)", "1": "something needs attention (a FAIL line)", "2": ""},
    ),
    "gc": Topic(
        "Forgets the sessions not seen for DAYS whose transcript is gone or as old and that are not running, "
        "with their markers. Their undelivered mail moves to archive/ID.jsonl, never deleted; empty "
        "mailboxes go. The hook runs the same collection at most once a day.",
        output=(
            "one line per session: forgot (or would forget) NAME ID (last seen TIME), N message(s) archived; "
            "skipped ID: REASON; removed N empty mailbox(es); or nothing to collect",
            "--json: {olderThanDays, dry, retired, skipped, emptyMailboxes, receiptsRemoved, journalPruned, archive}",
        ),
        example="relay gc --dry",
    ),
    "hook": Topic(
        "Run by the agent CLI, not by you: at session start, each prompt, after tool calls, at turn end and "
        "at session end. It reads the hook event (JSON) on stdin: SessionStart registers the session; "
        "UserPromptSubmit, PostToolUse and Stop deliver the mail its deliver mode lets through; SessionEnd "
        "records endedAt; any other event is ignored.",
        output=("the event's JSON answer on stdout carrying the fenced mail (nothing when there is none)",),
        example="relay hook codex < event.json",
        exits={"0": "always, so the agent CLI's session goes on; problems go to stderr as one line"},
        positionals={
            "tool": "the CLI the event comes from: codex, gemini, qwen, opencode (without it: Claude Code, or "
            "Qwen Code when the event's session is the one in QWEN_CODE_SESSION_ID)"
        },
        usage="relay hook [<tool>]",
        summary="serve an agent CLI's hook event (run by every supported agent CLI)",
    ),
    "hook watch": Topic(
        "Run by Claude Code in the background (asyncRewake), not by you: waits while the session is idle "
        "and hands it its mail as a new turn. At most one per session; it leaves at the next prompt, at "
        "session end, and after RELAY_MAX_AUTO_WAKES turns it started with no prompt from you in between.",
        output=("nothing on stdout; the fenced mail on stderr when it exits 2",),
        example="relay hook watch < event.json",
        exits={"0": "it left without mail (or was not needed)", "2": "mail was handed to the model on stderr"},
        positionals={"opencode": "run by relay's OpenCode plugin, which starts the turn itself"},
        usage="relay hook watch [opencode]",
        summary="Claude Code's idle-mail watcher (run by Claude Code)",
    ),
    "bus": Topic(
        "The MCP stdio server, run by the agent CLI: tools whoami, register, roster, send, inbox, discover, "
        "status and wait. Serves until its stdin closes.",
        output=("JSON-RPC frames on stdout, nothing else; its own notes on stderr",),
        example="relay bus",
        exits={"0": "stdin closed", "2": "it takes no arguments"},
        usage="relay bus",
        summary="the MCP stdio server (run by Claude Code and Codex)",
    ),
    "demo": Topic(
        "Shows the whole relay at work in a throwaway store: two simulated sessions start through the real "
        "hook, one sends to the other by name, the mail arrives fenced, a reply goes back, and the doorbell "
        "is shown dry. Your store is not touched and no agent CLI runs.",
        output=("the walk-through, step by step",),
        example="relay demo",
        usage="relay demo",
        summary="show the whole relay at work in a throwaway store",
    ),
    "version": Topic(
        "Prints relay's version (also: relay --version, relay -V).",
        output=(f"one line: relay {__version__}",),
        example="relay --version",
        exits={"0": "", "2": "it takes no arguments"},
        usage="relay version",
        summary="print relay's version",
    ),
    "help": Topic(
        "Lists the commands, or shows one command's help (the same as relay COMMAND --help).",
        output=("the help text",),
        example="relay help send",
        exits={"0": "", "2": "no such command"},
        positionals={"COMMAND": "a command, e.g. send or hook watch"},
        usage="relay help [COMMAND]",
        summary="list the commands, or show one command's help",
    ),
}

FACES = ("hook", "hook watch", "bus", "demo", "version", "help")


def usages(name: str) -> list[str]:
    """The usage lines of a topic: a Spec's `a | b` alternatives, one a line."""
    spec = SHAPES.get(name)
    return spec.usage.split(" | ") if spec is not None else [TOPICS[name].usage]


def summary(name: str) -> str:
    spec = SHAPES.get(name)
    return spec.summary if spec is not None else TOPICS[name].summary


def listing() -> str:
    """`relay --help`: every command with one line each."""
    names = [*SHAPES, *FACES]
    width = max(len(name) for name in names) + 2
    lines = [
        f"relay {__version__}: a message bus between Claude Code and Codex sessions on this machine",
        "",
        "usage: relay <command> [options]",
        "       relay <command> --help     (or relay help <command>) for its options, output, exit codes, example",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}{summary(name)}" for name in names]
    lines += [
        "",
        "Store: $AGENT_RELAY_HOME (default ~/.agent-relay). Everything after -- is the message, verbatim.",
        "Exit status: 0 success, 1 error, 2 usage error, 4 ask got no reply in time, 75 wake refused.",
    ]
    return "\n".join(lines)


def _wrapped(label: str, text: str, indent: int) -> list[str]:
    """`label` in a column of `indent` characters, `text` wrapped beside it."""
    if len(label) + 3 > indent:  # too long for the column: the text starts on the next line
        return [f"  {label}", *textwrap.wrap(text, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * indent)]
    head = f"  {label}".ljust(indent)
    return textwrap.wrap(text, WIDTH, initial_indent=head, subsequent_indent=" " * indent) or [head.rstrip()]


def _option_lines(spec: Spec | None) -> list[str]:
    rows: list[tuple[str, str]] = []
    options = [(name, spec.options[name]) for name in (*spec.values, *spec.flags)] if spec is not None else []
    for option, (metavar, meaning, default) in options:
        note = default if default.startswith("required") else f"default: {default}"
        rows.append((f"{option} {metavar}".rstrip(), f"{meaning} ({note})"))
    rows.append(("-h, --help", "show this help and exit"))
    indent = min(max(len(label) for label, _ in rows) + 4, 26)
    lines: list[str] = []
    for label, text in rows:
        lines += _wrapped(label, text, indent)
    return lines


def render(name: str) -> str:
    """One command's whole help."""
    topic, spec = TOPICS[name], SHAPES.get(name)
    first, *others = usages(name)
    lines = [f"usage: {first}", *(f"       {usage}" for usage in others), ""]
    lines += textwrap.wrap(topic.about, WIDTH)
    if topic.positionals:
        lines += ["", "arguments:"]
        indent = max(len(word) for word in topic.positionals) + 4
        for word, meaning in topic.positionals.items():
            lines += _wrapped(word, meaning, indent)
    lines += ["", "options:", *_option_lines(spec), "", "output:"]
    for line in topic.output:
        lines += textwrap.wrap(line, WIDTH, initial_indent="  ", subsequent_indent="    ")
    lines += ["", "exit status:"]
    for code, meaning in topic.exits.items():
        lines += _wrapped(code, meaning or EXIT_MEANING[code], 9)
    lines += ["", "example:", f"  {topic.example}"]
    return "\n".join(lines)


def topic_of(words: list[str]) -> str | None:
    """The topic `relay help WORDS...` names: a command, or `hook watch`; None for no such topic."""
    name = " ".join(words)
    return name if name in TOPICS else None
