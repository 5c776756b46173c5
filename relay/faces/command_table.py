"""The command table: every people command's usage, summary, options and handler, written once.

relay.faces.argv parses a command line against its row, relay.faces.cli dispatches to the handler
it names in relay.faces.commands, and relay.faces.helptext renders its --help from the same row, so
an option cannot exist in one and be missing from the other. Each option carries what --help says
of it; its kind (a flag, or an option that takes a value) is whether it has a METAVAR. Plain text
and tuples only: every short-lived command imports this module.
"""

from relay.domain.ids import AGENT_CLIS
from relay.faces.argv import Spec

# The column titles of `list` and `discover`: their header line on a terminal, and their --help.
LIST_COLUMNS = ("NAME", "TOOL", "ID", "DELIVER", "DIR", "LAST SEEN")
HOST_COLUMN = "HOST"  # before DIR, when the store is shared by several machines (Redis)
DISCOVER_COLUMNS = ("TOOL", "ID", "NAME", "LAST WRITE", "CWD")
DEFAULT_ASK_SECONDS = 120.0
MAX_ASK_SECONDS = 3600.0
DOORBELL_PER_MINUTE = 6  # relay.faces.doorbell_server.DEFAULT_PER_MINUTE

# The defaults of relay.usecases.discover and relay.usecases.gc, written out because those modules
# import orjson and pathlib, which a command's table needs no more than `list` does; tests/faces/test_helptext.py
# checks they still agree.
DISCOVER_WITHIN_MIN, DISCOVER_LIMIT, GC_DAYS = 60, 50, 14
LOG_LIMIT = 50  # how many events `relay log` prints by default

TOOL_CHOICE = "|".join(AGENT_CLIS)

SHAPES: dict[str, Spec] = {
    "discover": Spec(
        f"relay discover [--within MIN] [--tool {TOOL_CHOICE}] [--exclude ID] [--cwd DIR] [--limit N] [--json]",
        "list the sessions running now, from the CLIs' transcripts",
        "discover_command",
        options={
            "--within": (
                "MIN",
                "only sessions whose transcript was written in the last MIN minutes",
                str(DISCOVER_WITHIN_MIN),
            ),
            "--tool": (TOOL_CHOICE, "only the sessions of this agent CLI", "all"),
            "--exclude": ("ID", "leave out the session with this (whole) id (e.g. your own)", "none"),
            "--cwd": ("DIR", "sessions running in DIR come first", "none"),
            "--limit": ("N", "at most N sessions", str(DISCOVER_LIMIT)),
            "--json": ("", "print a JSON array instead of lines", "off"),
        },
    ),
    "list": Spec(
        "relay list [--json]",
        "list registered sessions",
        "list_command",
        options={"--json": ("", "print a JSON array instead of lines", "off")},
    ),
    "register": Spec(
        f"relay register NAME --id UUID [--dir DIR] [--tool {TOOL_CHOICE}] [--deliver now|turn|start]",
        "name a session and set when its mail reaches it",
        "register_command",
        options={
            "--id": ("UUID", "the session to name: its id, or a unique prefix of 8+ hex characters", "required"),
            "--dir": ("DIR", "its project dir (relative to the current dir)", "kept; none for a new session"),
            "--tool": (TOOL_CHOICE, "its agent CLI", "kept; claude for a new session"),
            "--deliver": (
                "now|turn|start",
                "when its mail reaches it while it runs: now (also between tool calls), turn (at its next "
                "prompt or turn end; urgent mail between tool calls), start (only when a session starts)",
                "kept; turn for a new session",
            ),
        },
        positionals=("NAME",),
    ),
    "send": Spec(
        "relay send TO [--from WHO] [--reply-to ID] [--urgent] [--json] [--] MESSAGE... | "
        "relay send --id UUID [options] [--] MESSAGE...",
        "queue a message for a session and print its id",
        "send_command",
        options={
            "--id": (
                "UUID",
                "send to this session id instead of TO, even one not registered (e.g. from discover); a unique "
                "prefix of 8+ hex characters of a registered id works too",
                "none",
            ),
            "--from": ("WHO", "send as this registered session, so the answer goes to it", "cli, the person"),
            "--reply-to": (
                "ID",
                "the id (or a unique 8+ hex prefix) of the message this answers; it joins its thread",
                "none",
            ),
            "--urgent": ("", "the message may interrupt the recipient between tool calls", "off"),
            "--json": ("", "print the result as one JSON line", "off"),
        },
        positionals=("TO",),
        message=True,
    ),
    "ask": Spec(
        "relay ask TO [--from WHO] [--wait SECONDS] [--wake] [--json] [--] MESSAGE...",
        "send a question, wait for its reply and print it",
        "ask_command",
        options={
            "--from": ("WHO", "ask as this registered session (its inbox gets the reply)", "a new address"),
            "--wait": (
                "SECONDS",
                f"how long to wait for the reply, 0 to {MAX_ASK_SECONDS:g}",
                f"{DEFAULT_ASK_SECONDS:g}",
            ),
            "--wake": (
                "",
                "ring the recipient's doorbell after queueing, as `relay wake` does (the same guardrails), "
                "unless it runs now",
                "off",
            ),
            "--json": ("", "print the whole reply as JSON", "off"),
        },
        positionals=("TO",),
        message=True,
    ),
    "status": Spec(
        "relay status MSG_ID [--json]",
        "what became of a message: queued, taken, delivered, replied (with the reply's id) or archived by gc",
        "status_command",
        options={"--json": ("", "print the status as one JSON line", "off")},
        positionals=("MSG_ID",),
    ),
    "inbox": Spec(
        "relay inbox WHO",
        "print a session's mail as JSON and take it",
        "inbox_command",
        positionals=("WHO",),
    ),
    "peek": Spec(
        "relay peek WHO",
        "print a session's mail as JSON without taking it",
        "peek_command",
        positionals=("WHO",),
    ),
    "wake": Spec(
        "relay wake WHO [--dry] [--force] [--] [MESSAGE...] | "
        f"relay wake --id UUID --dir DIR --tool {TOOL_CHOICE} [--dry] [--force] [--] [MESSAGE...]",
        "resume an idle session headless so it reads its mail",
        "wake_command",
        options={
            "--id": (
                "UUID",
                "wake this session id instead of WHO, even one not registered; needs --dir and --tool",
                "none",
            ),
            "--dir": ("DIR", "with --id: the session's project dir", "required with --id"),
            "--tool": (TOOL_CHOICE, "with --id: the session's agent CLI", "required with --id"),
            "--dry": ("", "print what it would run; run, queue and count nothing", "off"),
            "--force": ("", "wake even a session that seems to run now (overrides only that check)", "off"),
        },
        positionals=("WHO",),
        message=True,
    ),
    "log": Spec(
        "relay log [--follow] [--thread ID] [--session NAME|ID] [--since DURATION] [--limit N] [--json]",
        "show the journal: what was sent, delivered, replied, woken or refused, bodies included",
        "log_command",
        options={
            "--follow": ("", "keep printing new events as they happen, until Ctrl-C", "off"),
            "--thread": ("ID", "only the conversation of this message id (or its first characters)", "all"),
            "--session": ("NAME|ID", "only events from or to this session", "all"),
            "--since": ("DURATION", "only events of the last DURATION: 90s, 15m, 2h or 3d", "all kept"),
            "--limit": ("N", "print the last N events (then follow)", str(LOG_LIMIT)),
            "--json": ("", "one JSON object per line", "off"),
        },
    ),
    "ui": Spec(
        "relay ui [--port N] [--no-open]",
        "serve a local web page of the sessions and their threads, live, with a box to send from",
        "ui_command",
        options={
            "--port": ("N", "listen on this port of 127.0.0.1; 0 picks a free one", "0, a free port"),
            "--no-open": ("", "only print the URL; do not hand it to xdg-open", "off: opened when a display is set"),
        },
    ),
    "doorbell": Spec(
        "relay doorbell [--serve] [--per-minute N]",
        "list the hosts whose doorbell is served, or serve this host's (Redis store)",
        "doorbell_command",
        options={
            "--per-minute": ("N", "ring at most N wakes a minute; more wait their turn", str(DOORBELL_PER_MINUTE)),
            "--serve": ("", "serve this host's doorbell until stopped", "off: list the served hosts"),
        },
    ),
    "doctor": Spec(
        "relay doctor",
        "check the store and the installation; one PASS/WARN/FAIL line each, with its fix",
        "doctor_command",
    ),
    "gc": Spec(
        "relay gc [--older-than DAYS] [--dry] [--json]",
        "forget stale sessions; their undelivered mail goes to archive/",
        "gc_command",
        options={
            "--older-than": ("DAYS", "forget sessions not seen for DAYS days", str(GC_DAYS)),
            "--dry": ("", "only list what it would do", "off"),
            "--json": ("", "print the report as JSON", "off"),
        },
    ),
}
