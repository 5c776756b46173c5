"""`relay gc`: forget sessions that are gone for good, keeping their mail.

A registration goes when it was not seen for DAYS and its transcript is gone or older than that,
and the session is not running; its markers go with it and its undelivered mail is archived
(`<home>/archive/<id>.jsonl`, or relay:archive:<id> on Redis), never deleted. On a store several
machines share, only this host's sessions are judged: their transcripts and processes are here.
None goes when no other session was seen or wrote its transcript within DAYS: a wall clock that
jumped forward would otherwise age them all at once. Empty mailboxes go. The hook runs the same
collection at most once a day (relay.faces.hook). Message receipts (`relay status`) unchanged for
RECEIPT_DAYS go too, and the journal's days past RELAY_JOURNAL_DAYS (docs/journal.md). The store
does the work; this module only decides.
"""

import calendar
import time

from relay.domain.ids import require_uuid
from relay.store.files import Entry
from relay.usecases.journal import prune as prune_journal
from relay.util.errors import LockBusy

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI

DEFAULT_DAYS = 14.0
DAY_SECONDS = 86400
# How long `relay status` can follow a message after its last change (docs/delivery.md).
RECEIPT_DAYS = 30


def is_live(session_id: str, tool: object) -> bool:
    """Whether a session runs now (relay.agents); gc never touches a live session."""
    from relay.agents import is_live as probe

    return probe(session_id, tool)


def _epoch(stamp: object) -> float:
    """Seconds since the epoch of an ISO `lastSeen`; 0 (long ago) when it does not parse."""
    if not isinstance(stamp, str):
        return 0.0
    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0.0


def transcript_times() -> dict[str, float]:
    """The newest transcript mtime of every agent CLI's session on this machine, by id."""
    from relay.agents import adapters

    newest: dict[str, float] = {}
    for agent in adapters():
        for session_id, mtime in agent.transcript_times():
            newest[session_id.lower()] = max(mtime, newest.get(session_id.lower(), 0.0))
    return newest


def stale_entries(store: "StoreAPI", days: float, now: float) -> list[Entry]:
    """Registrations not seen for `days` whose transcript is gone or as old, and not running."""
    cutoff = now - days * DAY_SECONDS
    transcripts: dict[str, float] | None = None
    stale = []
    for entry in store.registry().entries():
        if _epoch(entry.get("lastSeen")) >= cutoff or not store.on_this_host(entry):
            continue  # seen lately, or another machine's session: only its own host can judge it
        if transcripts is None:
            transcripts = transcript_times()
        session_id = str(entry.get("id"))
        if transcripts.get(session_id.lower(), 0.0) >= cutoff:
            continue
        if is_live(session_id, entry.get("tool")):
            continue
        stale.append(entry)
    return stale


# Why nothing is forgotten when every other session looks abandoned at once.
CLOCK_SUSPECT = (
    "no other session was seen or wrote its transcript in {days:g} days: the clock may have jumped forward, "
    "so none is forgotten"
)


def clock_suspect(store: "StoreAPI", days: float, now: float, running: str | None) -> bool:
    """No session but `running` (the one whose hook collects: it was just seen) was seen or wrote
    its transcript within `days`: a whole machine idle that long while a hook runs now is less
    likely than a wall clock that jumped forward."""
    cutoff = now - days * DAY_SECONDS
    own = (running or "").lower()
    if any(str(e.get("id")).lower() != own and _epoch(e.get("lastSeen")) >= cutoff for e in store.registry().entries()):
        return False
    return not any(sid != own and mtime >= cutoff for sid, mtime in transcript_times().items())


def collect(
    store: "StoreAPI",
    days: float = DEFAULT_DAYS,
    dry: bool = False,
    now: float | None = None,
    running: str | None = None,
) -> dict:
    """Collect (or with `dry`, only list) what is stale; a report of what went and where mail went.
    `running`: the session whose hook collects (it was just seen, so it is no evidence of the time)."""
    now = time.time() if now is None else now
    retired: list[dict] = []
    skipped: list[dict] = []
    stale = stale_entries(store, days, now)
    held = bool(stale) and clock_suspect(store, days, now, running)
    for entry in stale:
        row = {k: entry.get(k) for k in ("id", "name", "tool", "dir", "lastSeen")}
        if held:
            skipped.append({**row, "reason": CLOCK_SUSPECT.format(days=days)})
            continue
        if not dry:
            try:
                row["archived"] = store.retire(require_uuid(entry["id"]))  # read back from the registry
            except LockBusy:
                skipped.append({**row, "reason": "its mailbox is being read right now"})
                continue
        retired.append(row)
    empty = [name for name, size in store.mailbox_files() if size == 0]
    receipts = journal_pruned = 0
    if not dry:
        empty = [name for name in empty if store.drop_empty_mailbox(name)]
        receipts = store.prune_receipts(RECEIPT_DAYS * DAY_SECONDS, now)
        journal_pruned = prune_journal(store, now)
        store.touch_gc_stamp()
    return {
        "olderThanDays": days,
        "dry": dry,
        "retired": retired,
        "skipped": skipped,
        "emptyMailboxes": empty,
        "receiptsRemoved": receipts,
        "journalPruned": journal_pruned,
        "archive": store.archive_location(),
    }
