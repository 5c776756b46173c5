"""The people-facing commands: discover, list, register, send, ask, status, inbox, peek, wake.

Each is a thin face over the shared core and prints what a person (or an agent without MCP)
needs. Each takes the parsed command line and returns the exit code.
"""

from __future__ import annotations

import os
import sys

from relay.domain.ids import AGENT_CLIS, require_uuid
from relay.faces.argv import Parsed
from relay.faces.boundary import say
from relay.faces.command_table import (
    DEFAULT_ASK_SECONDS,
    DISCOVER_COLUMNS,
    DOORBELL_PER_MINUTE,
    HOST_COLUMN,
    LIST_COLUMNS,
    MAX_ASK_SECONDS,
    SHAPES,
)
from relay.util.errors import RelayError, UsageError

TYPE_CHECKING = False  # typing costs every short-lived command its import; only mypy needs these
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from relay.domain.ids import SessionId
    from relay.store.contract import StoreAPI


def _print_json(value: Any, pretty: bool = True) -> None:
    from relay.util.jsonlite import encode

    sys.stdout.buffer.write(encode(value, pretty) + b"\n")
    sys.stdout.flush()


def _show(parsed: Parsed, rows: list[Any], empty: str, line: Callable[[Any], str], header: str) -> int:
    """Rows as a JSON array with --json, else one line each (or a note when there are none), under
    a header line of column titles when a person reads them on a terminal (never in a pipe)."""
    if "--json" in parsed.flags:
        _print_json(rows)
        return 0
    if not rows:
        print(empty)
    elif sys.stdout.isatty():
        print(header)
    for row in rows:
        print(line(row))
    return 0


def _tool_option(parsed: Parsed) -> str | None:
    tool = parsed.options.get("--tool")
    if tool is not None and tool not in AGENT_CLIS:
        raise UsageError(f"--tool must be one of {', '.join(AGENT_CLIS)}, not {tool!r}")
    return tool


def _deliver_option(parsed: Parsed) -> str | None:
    from relay.domain.policy import DELIVER_MODES

    mode = parsed.options.get("--deliver")
    if mode is not None and mode not in DELIVER_MODES:
        raise UsageError(f"--deliver must be one of {', '.join(DELIVER_MODES)}, not {mode!r}")
    return mode


def _id_option(store: StoreAPI, parsed: Parsed) -> SessionId:
    """The session --id stands for. A value that is no id nor the start of one is a usage error
    (exit 2) naming --id; a well-formed prefix that matches no session is a lookup error (exit 1)."""
    from relay.domain.ids import is_id_prefix, is_session_id
    from relay.usecases.addressing import session_id_of

    raw = parsed.options["--id"]
    if is_session_id(raw) or is_id_prefix(raw):
        return session_id_of(store, raw)
    try:
        return session_id_of(store, raw)  # raises the exact reason: too short, or not an id
    except UsageError:
        raise
    except RelayError as err:
        raise UsageError(f"--id: {err}") from None


def _number(parsed: Parsed, option: str, default: float, most: float | None = None) -> float:
    """A number option's value: positive and finite, or, given `most`, from 0 to `most` (--wait)."""
    raw = parsed.options.get(option)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{option} needs a number, not {raw!r}") from None
    if most is not None and not 0 <= value <= most:
        raise UsageError(f"{option} must be 0 to {most:g} seconds, not {raw!r}")
    if most is None and not (value > 0 and value != float("inf")):
        raise UsageError(f"{option} must be a positive number, not {raw!r}")
    return value


def _need(parsed: Parsed, what: str, usage: str) -> str:
    if not parsed.positionals:
        raise UsageError(f"missing {what}; usage: {usage}")
    return parsed.positionals[0]


def _absolute(directory: str) -> str:
    return os.path.abspath(os.path.expanduser(directory))


def discover_command(store: StoreAPI, parsed: Parsed) -> int:
    """Live sessions, newest first."""
    from relay.usecases.discover import DEFAULT_LIMIT, DEFAULT_WITHIN_MIN, discover

    limit = _number(parsed, "--limit", DEFAULT_LIMIT)
    if limit != int(limit):
        raise UsageError("--limit needs a whole number")
    cwd = parsed.options.get("--cwd")
    rows = discover(
        store.registry(),
        within_min=_number(parsed, "--within", DEFAULT_WITHIN_MIN),
        tool=_tool_option(parsed),
        exclude=parsed.options.get("--exclude"),
        cwd_first=_absolute(cwd) if cwd else None,
        limit=int(limit),
    )
    empty = "no session transcripts written in that window (try --within with more minutes)"
    return _show(parsed, rows, empty, _session_line, _session_cells(*DISCOVER_COLUMNS))


def _session_line(row: dict[str, Any]) -> str:
    """One discovered session; the cwd (from a transcript) and name (from the registry) are shown
    escaped, so nothing planted in them can drive the terminal."""
    from relay.util.clock import ago
    from relay.util.textsafe import one_line

    busy = "  (live)" if row["live"] else ""
    name = one_line(row["name"] or "-")
    cwd = one_line(row["cwd"] or "?")
    return _session_cells(row["tool"], one_line(row["id"]), name, ago(row["ageSec"]), cwd) + busy


def _session_cells(tool: str, session_id: str, name: str, age: str, cwd: str) -> str:
    return f"{tool:<6}  {session_id:<36}  {name:<16}  {age:>11}  {cwd}"


def list_command(store: StoreAPI, parsed: Parsed) -> int:
    """The registry, one session a line, in columns as wide as their widest cell (titles included,
    so the rows line up the same with and without the header)."""
    empty = "no sessions registered yet: sessions register when they start (or: relay register NAME --id UUID)"
    from relay.domain.policy import shown_with_mode

    rows = [shown_with_mode(e) for e in store.registry().entries()]
    if "--json" in parsed.flags or not rows:
        return _show(parsed, rows, empty, str, "")
    # Entries carry `host` only in a store several machines share (Redis): then each line says where.
    hosts = any(row.get("host") for row in rows)
    titles = (*LIST_COLUMNS[:4], HOST_COLUMN, *LIST_COLUMNS[4:]) if hosts else LIST_COLUMNS
    cells = [_entry_cells(row, hosts) for row in rows]
    widths = [max(len(c[i]) for c in [titles, *cells]) for i in range(len(titles) - 1)]

    def aligned(row: tuple[str, ...]) -> str:
        return "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), *row[len(widths) :]])

    return _show(parsed, cells, empty, aligned, aligned(titles))


def _entry_cells(entry: dict[str, Any], hosts: bool) -> tuple[str, ...]:
    """One registry entry's cells; every field is shown escaped (the registry may have been planted).
    LAST SEEN is how long ago, and after its SessionEnd how long ago it ended."""
    import time

    from relay.util.clock import ago, epoch_from_iso
    from relay.util.textsafe import one_line

    def when(field: str) -> str:
        stamp = epoch_from_iso(entry.get(field))
        return ago(time.time() - stamp) if stamp is not None else one_line(str(entry.get(field) or "-"))

    name, tool, session_id, host, directory = (
        one_line(str(entry.get(key) or "-")) for key in ("name", "tool", "id", "host", "dir")
    )
    seen = when("lastSeen") + (f", ended {when('endedAt')}" if entry.get("endedAt") else "")
    where = (host,) if hosts else ()
    return (name, tool, session_id, str(entry["deliver"]), *where, directory, seen)


def register_command(store: StoreAPI, parsed: Parsed) -> int:
    """Name a session."""
    spec = SHAPES["register"]
    name = _need(parsed, "NAME", spec.usage)
    if "--id" not in parsed.options:
        raise UsageError(f"--id is required; usage: {spec.usage}")
    fields: dict[str, Any] = {"name": name}
    if "--dir" in parsed.options:
        fields["directory"] = _absolute(parsed.options["--dir"])
    tool = _tool_option(parsed)
    if tool:
        fields["tool"] = tool
    deliver = _deliver_option(parsed)
    if deliver is not None:
        fields["deliver"] = deliver
    entry = store.register(_id_option(store, parsed), **fields)
    from relay.domain.policy import mode_of
    from relay.util.textsafe import one_line

    where = entry["dir"] or "no dir"
    shown = f"registered {entry['name']} -> {entry['id']} ({entry['tool']}, {where}, deliver {mode_of(entry)})"
    print(one_line(shown))
    return 0


def _sender(store: StoreAPI, parsed: Parsed) -> tuple[SessionId | None, str | None]:
    """(id, name) to send as: the registered session --from names, else the person at the CLI."""
    who = parsed.options.get("--from")
    if who is None:
        return None, "cli"
    from relay.usecases.addressing import lookup

    registry = store.registry()
    entry = lookup(registry, who)
    if entry is None or entry.get("id") not in registry.agents:
        raise RelayError(f"--from {who!r} is not a registered session: give a name or id from `relay list`")
    name = entry.get("name")
    return require_uuid(entry["id"]), name if isinstance(name, str) else None


def _target_and_words(store: StoreAPI, parsed: Parsed, command: str) -> tuple[str, list[str]]:
    """The recipient (TO, or --id UUID) and the message words."""

    spec = SHAPES[command]
    target: str
    if "--id" in parsed.options:
        target, words = _id_option(store, parsed), parsed.positionals + parsed.words
    else:
        target, words = _need(parsed, "TO", spec.usage), parsed.words
    if not words:
        raise UsageError(f"missing MESSAGE; usage: {spec.usage}")
    return target, words


def _queue(store: StoreAPI, parsed: Parsed, command: str, sender: tuple[str | None, str | None], **fields: Any) -> Any:
    """Send the command line's message from `sender` (relay.usecases.conversation.send_and_ring);
    a note on stderr when an idle Codex recipient could not be rung."""
    from relay.usecases.conversation import send_and_ring

    target, words = _target_and_words(store, parsed, command)
    sent = send_and_ring(store, target, " ".join(words), *sender, urgent="--urgent" in parsed.flags, **fields)
    if sent.note:
        say("relay: ", sent.note)
    return sent


def send_command(store: StoreAPI, parsed: Parsed) -> int:
    """Queue a message from the command line; print where it went and its id."""
    from relay.usecases.addressing import message_id_of

    sender = _sender(store, parsed)
    reply_to = parsed.options.get("--reply-to")
    if reply_to is not None:
        reply_to = message_id_of(store, reply_to, sender[0])
    sent = _queue(store, parsed, "send", sender, reply_to=reply_to)
    recipient, message = sent.recipient, sent.message
    if "--json" in parsed.flags:
        from relay.usecases.mail import thread_of

        fields = {"id": message["id"], "thread": thread_of(message), "to": message["to"], "toName": message["toName"]}
        _print_json({**fields, "recipient": sent.recipient_state()}, pretty=False)
        return 0
    print(f"queued -> {recipient.get('name') or recipient['id']} {message['id']}", flush=True)
    from relay.usecases.conversation import state_line

    note = state_line(recipient, sent.recipient_state()["state"])
    if note:
        print(note, flush=True)
    return 0


def ask_command(store: StoreAPI, parsed: Parsed) -> int:
    """Send a question and print its reply: exit 0 with one, NoReply (exit 4) when time runs out.

    Without --from the question comes from an address minted for this ask, whose mailbox only
    this command reads: a script can ask a session something and get the answer on stdout.
    """
    from relay.domain.ids import new_uuid4
    from relay.usecases.conversation import wait_for_reply
    from relay.util.errors import NoReply

    seconds = _number(parsed, "--wait", DEFAULT_ASK_SECONDS, MAX_ASK_SECONDS)
    who, name = _sender(store, parsed)
    minted = who is None
    if who is None:  # an address of its own, without the person's name `cli`: its reply comes back here
        who, name = require_uuid(new_uuid4()), None
    asker = who
    sent = _queue(store, parsed, "ask", (asker, name), expects_reply=True)
    recipient, message = sent.recipient, sent.message
    state = sent.recipient_state()["state"]
    if "--wake" in parsed.flags:
        _ring_for_answer(store, recipient, state)
    else:
        from relay.usecases.conversation import state_line

        note = state_line(recipient, state)
        if note:  # said at once: a wait on a session that is not running would otherwise be silent
            say("relay: ", f"{note}; or ask with --wake" if state != "unknown" else note)

    def show(reply: Any, earlier: list[Any], receipt: Any) -> None:
        for other in earlier:  # mail a dead taker left in flight in the asker's mailbox
            say("relay: ", f"also waiting for {asker}: {_json_line(other)}")
        if reply is None:
            say(
                "relay: ",
                f"the reply {receipt.get('id')} was already delivered to {asker} another way "
                f"(state {receipt.get('state')}); see relay status {message['id']}",
            )
        elif "--json" in parsed.flags:
            _print_json(reply, pretty=False)
        else:
            sys.stdout.write(f"{reply.get('body')}\n")
        sys.stdout.flush()

    confirm = wait_for_reply(store, message["id"], asker, seconds, show)
    if confirm is not None:
        confirm(True)
        if minted:
            from relay.store.layout import mailbox_name

            store.drop_empty_mailbox(mailbox_name(asker))
        return 0
    late = f"; a late reply waits in `relay inbox {asker}`" if minted else ""
    raise NoReply(
        f"no reply within {seconds:g} s; the question {message['id']} stays queued for "
        f"{recipient.get('name') or recipient['id']}: follow it with `relay status {message['id']}`{late}"
    )


def _ring_for_answer(store: StoreAPI, recipient: Any, state: str) -> None:
    """`ask --wake`: ring the recipient's doorbell once the question is queued, under every rule of
    `relay wake` (relay.usecases.wake). A live recipient is not rung (it reads the question at its
    next prompt or turn end); a refusal is said on stderr and the ask still waits. What the woken
    program prints goes to stderr: stdout carries only the reply."""
    from relay.usecases.wake import Target, wake
    from relay.util.errors import WakeRefused
    from relay.util.textsafe import one_line

    if state == "live":
        say("relay: ", f"{one_line(str(recipient.get('name') or recipient['id']))} is running: not waking it")
        return

    def report(shown: object) -> None:
        say("relay: ", str(shown) if isinstance(shown, str) else _json_line(shown))

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        wake(store, Target.registered(recipient), [], report, force=False, dry=False)
    except (WakeRefused, RelayError) as err:
        say("relay: ", f"not woken: {err}; still waiting for the reply")
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _json_line(value: Any) -> str:
    from relay.util.jsonlite import encode

    return encode(value, False).decode("utf-8", "replace")


def status_command(store: StoreAPI, parsed: Parsed) -> int:
    """Print what became of one message."""
    from relay.usecases.addressing import message_id_of
    from relay.usecases.conversation import status

    found = status(store, message_id_of(store, _need(parsed, "MSG_ID", SHAPES["status"].usage), None))
    if "--json" in parsed.flags:
        _print_json(found, pretty=False)
        return 0
    from relay.util.textsafe import one_line

    times = ", ".join(f"{k} {found[k]}" for k in ("queuedAt", "deliveredAt", "repliedAt") if found.get(k))
    reply = f"; reply {found['replyId']}" if found.get("replyId") else ""
    print(one_line(f"{found['id']} -> {found.get('toName') or found.get('to')}: {found['state']} ({times}){reply}"))
    return 0


def _mailbox_owner(store: StoreAPI, parsed: Parsed, command: str) -> SessionId:
    from relay.usecases.addressing import resolve

    who = _need(parsed, "WHO", SHAPES[command].usage)
    return require_uuid(resolve(store, who)["id"])


def inbox_command(store: StoreAPI, parsed: Parsed) -> int:
    """Print a session's mail as JSON and take it (only what was printed, once it was printed)."""
    from relay.usecases.deliver import inbox_result
    from relay.usecases.mail import deliver

    def show(batch: list[Any], remaining: int) -> int:
        result, shown = inbox_result(batch, remaining, model=False)
        _print_json(result)
        return shown

    deliver(store, _mailbox_owner(store, parsed, "inbox"), show)
    return 0


def peek_command(store: StoreAPI, parsed: Parsed) -> int:
    """Print a session's mail without taking it."""
    from relay.store.files import TAKE_BUDGET
    from relay.usecases.deliver import inbox_result

    messages, more = store.peek_batch(_mailbox_owner(store, parsed, "peek"), TAKE_BUDGET)
    _print_json(inbox_result(messages, more, model=False)[0])
    return 0


def wake_command(store: StoreAPI, parsed: Parsed) -> int:
    """Ring the doorbell of a registered or an explicitly described session (relay.usecases.wake),
    unless a guardrail refuses (exit 75, all mail stays queued)."""
    from relay.usecases.addressing import resolve
    from relay.usecases.wake import Target, wake

    spec = SHAPES["wake"]
    if "--id" in parsed.options:
        missing = [o for o in ("--dir", "--tool") if o not in parsed.options]
        if missing:
            raise UsageError(f"--id needs {' and '.join(missing)} too; usage: {spec.usage}")
        session_id = _id_option(store, parsed)
        directory = _absolute(parsed.options["--dir"])
        target = Target(session_id, directory, _tool_option(parsed), session_id, None)
        words = parsed.positionals + parsed.words
    else:
        target = Target.registered(resolve(store, _need(parsed, "WHO", spec.usage)))
        words = parsed.words

    def report(shown: object) -> None:
        if isinstance(shown, str):
            from relay.util.textsafe import one_line

            print(one_line(shown))
        else:
            _print_json(shown, pretty=False)

    return wake(store, target, words, report, force="--force" in parsed.flags, dry="--dry" in parsed.flags)


def log_command(store: StoreAPI, parsed: Parsed) -> int:
    """Print the journal's last events, oldest first, and with --follow the new ones (relay.faces.logview)."""
    from relay.faces.logview import main

    return main(store, parsed)


def ui_command(store: StoreAPI, parsed: Parsed) -> int:
    """Serve the web view on 127.0.0.1 and print its URL, until Ctrl-C (relay.faces.webview)."""
    from relay.faces.webview import main

    return main(store, parsed)


def doorbell_command(store: StoreAPI, parsed: Parsed) -> int:
    """List the hosts whose doorbell is served, or serve this host's until SIGTERM or SIGINT
    (relay.faces.doorbell_server)."""
    per_minute = _number(parsed, "--per-minute", DOORBELL_PER_MINUTE)
    if per_minute != int(per_minute):
        raise UsageError("--per-minute needs a whole number")
    if "--serve" not in parsed.flags:
        from relay.faces.doorbell_server import show_served

        return show_served(store)
    from relay.faces.boundary import long_lived
    from relay.faces.doorbell_server import serve

    long_lived()
    return serve(store, int(per_minute))


def doctor_command(store: StoreAPI, parsed: Parsed) -> int:
    """Check the store and the installation, one PASS/WARN/FAIL line each; exit 1 on any FAIL."""
    from relay.usecases.doctor import main

    return main(store)


def gc_command(store: StoreAPI, parsed: Parsed) -> int:
    """Forget stale sessions (their mail is archived, never deleted); --dry only lists them."""
    from relay.usecases.gc import DEFAULT_DAYS, collect
    from relay.util.textsafe import one_line

    days = _number(parsed, "--older-than", DEFAULT_DAYS)
    report = collect(store, days=days, dry="--dry" in parsed.flags)
    if "--json" in parsed.flags:
        _print_json(report)
        return 0
    verb = "would forget" if report["dry"] else "forgot"
    for row in report["retired"]:
        mail = f", {row['archived']} message(s) archived" if row.get("archived") else ""
        print(one_line(f"{verb} {row.get('name') or '-'} {row['id']} (last seen {row.get('lastSeen')}){mail}"))
    for row in report["skipped"]:
        print(one_line(f"skipped {row['id']}: {row['reason']}"))
    if report["emptyMailboxes"]:
        print(f"{'would remove' if report['dry'] else 'removed'} {len(report['emptyMailboxes'])} empty mailbox(es)")
    if not report["retired"] and not report["emptyMailboxes"]:
        print(f"nothing to collect (no session unseen for {days:g} days)")
    return 0


# Each command's handler, by the name its row of the command table gives.
HANDLERS: dict[str, Callable[[StoreAPI, Parsed], int]] = {
    name: globals()[spec.handler] for name, spec in SHAPES.items()
}
