"""The store's contract (relay.store.contract.StoreAPI), in-process, run against both stores: the file
store and the Redis store on a real redis-server (tests/redis_server.py). What either store must do is
tested here once; what only one of them does (files' bytes on disk, Redis's hosts, crashes of takers
in other processes) stays in tests/store/test_files.py and tests/store/test_redisdb.py.

Without redis-py or redis-server the redis half skips, or fails under RELAY_REQUIRE_REDIS=1 (conftest)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import new_id

from relay.domain.ids import new_uuid4, require_uuid
from relay.domain.policy import is_urgent
from relay.util.clock import now_iso
from relay.util.errors import RelayError

REPO = Path(__file__).resolve().parents[2]
TYPE_CHECKING = False
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI


@pytest.fixture(params=["files", "files-lazily", "redis"])
def store(request: pytest.FixtureRequest, env: dict[str, str], store_home: Path, tmp_path: Path) -> "StoreAPI":
    if request.param == "redis":
        from relay.store.redisdb import RedisStore

        url = request.getfixturevalue("redis_url")  # skips, or fails under RELAY_REQUIRE_REDIS=1
        return RedisStore(url, home=str(tmp_path / "local"))
    if request.param == "files-lazily":  # the hook's: relay.store.glance answers first, the rest opens Store
        from relay.store.contract import open_store

        lazy = open_store(lazily=True)
        assert type(lazy).__name__ == "LocalStore" and lazy.home == str(store_home)
        return lazy
    from relay.store.files import Store

    return Store(store_home)


def sid():  # type: ignore[no-untyped-def]
    """A fresh session id, made the one way the store accepts one."""
    return require_uuid(new_id())


def message(to: str, body: str, **extra: object) -> dict:
    return {"id": new_uuid4(), "ts": now_iso(), "from": None, "fromName": None, "to": to, "toName": None} | {
        "body": body,
        **extra,
    }


def bodies(messages: list[dict]) -> list[object]:
    return [m["body"] for m in messages]


def without_host(entry: dict) -> dict:
    """An entry as both stores keep it (Redis adds the host it was written from)."""
    return {k: v for k, v in entry.items() if k != "host"}


# -- registry, names, markers ---------------------------------------------------------------------


def test_register_upserts_keeps_what_is_not_given_and_refreshes_last_seen(store):
    me = sid()
    first = store.register(me, directory="/w/a", name="alpha", tool="codex")
    assert without_host(first) == {
        "id": me,
        "dir": "/w/a",
        "name": "alpha",
        "tool": "codex",
        "lastSeen": first["lastSeen"],
    }
    time.sleep(0.002)
    second = store.register(me)
    assert without_host(second) == without_host(first) | {"lastSeen": second["lastSeen"]}
    assert second["lastSeen"] > first["lastSeen"]
    third = store.register(me, directory="/w/b", deliver="start")
    assert third["dir"] == "/w/b" and third["deliver"] == "start" and third["name"] == "alpha"
    registry = store.registry()
    assert without_host(registry.agents[me]) == without_host(third) and registry.names == {"alpha": me}


def test_register_defaults(store):
    entry = store.register(sid())
    assert (entry["dir"], entry["name"], entry["tool"]) == (None, None, "claude")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"name": "cli"}, "reserved"),
        ({"name": "--flag"}, "invalid name"),
        ({"tool": "aider"}, "invalid tool"),
        ({"directory": "relative/dir"}, "absolute"),
        ({"deliver": "sometimes"}, "deliver"),
    ],
)
def test_register_checks_its_fields_before_anything_is_written(store, fields, needle):
    me = sid()
    with pytest.raises(RelayError, match=needle):
        store.register(me, **fields)
    assert store.registry().agents == {} and store.registry().names == {}


def test_a_rename_drops_the_old_name_and_a_taken_name_moves(store):
    a, b = sid(), sid()
    store.register(a, name="alpha")
    store.register(b, name="bravo")
    store.register(a, name="apple")
    registry = store.registry()
    assert registry.names == {"apple": a, "bravo": b} and registry.agents[a]["name"] == "apple"
    store.register(b, name="apple")
    registry = store.registry()
    assert registry.names == {"apple": b}
    assert registry.agents[a]["name"] is None and registry.agents[b]["name"] == "apple"
    assert registry.resolve("apple")["id"] == b and registry.resolve("bravo") is None
    assert registry.resolve(a)["id"] == a and registry.resolve("nobody") is None
    assert registry.ids_starting(a[:8].upper()) == [a]
    assert [e["id"] for e in registry.entries()] == sorted([a, b], key=lambda i: registry.agents[i]["name"] or i)


def test_names_are_unique_ignoring_case_and_move_in_the_case_given(store):
    a, b = sid(), sid()
    store.register(a, name="victimproj")
    store.register(b, name="Victimproj")  # the same name in another case: it moves, as given
    registry = store.registry()
    assert registry.names == {"Victimproj": b}
    assert registry.agents[a]["name"] is None and registry.agents[b]["name"] == "Victimproj"
    assert registry.resolve("VICTIMPROJ")["id"] == b and registry.resolve("victimproj")["id"] == b


def test_a_started_session_never_gets_a_name_that_differs_only_in_case(store, tmp_path):
    a, b = sid(), sid()
    store.register(a, name="API")
    assert store.record_start(b, str(tmp_path / "api"), "claude")["name"] == "api-2"


def test_move_name_hands_over_the_name_and_the_mail_sent_to_it(store):
    old, new, other = sid(), sid(), sid()
    store.register(old, name="payments-api", directory="/w/p", tool="claude")
    store.register(new, name="payments-api-2", directory="/w/p", tool="claude")
    store.register(other, name="other")
    by_name = message(old, "to the name", toName="payments-api", byName=True)
    by_id = message(old, "to the id", toName="payments-api")
    urgent = message(old, "urgent, to the name", toName="Payments-API", byName=True, urgent=True)
    for each in (by_name, by_id, urgent):
        store.enqueue(old, each)
    moved = store.move_name("PAYMENTS-API", old, new)
    assert moved == [by_name["id"], urgent["id"]]
    registry = store.registry()
    assert registry.names == {"payments-api": new, "other": other}
    assert registry.agents[old]["name"] is None and registry.agents[new]["name"] == "payments-api"
    assert registry.agents[old]["dir"] == "/w/p"  # the old session keeps its entry and id
    assert bodies(store.peek(old)) == ["to the id"]
    assert bodies(store.peek(new)) == ["to the name", "urgent, to the name"]
    assert store.has_urgent(new) and not store.has_urgent(old)
    for each in (by_name, urgent):  # ids and receipts kept; the receipt follows the mail
        state = store.message_state(each["id"])
        assert state["to"] == new and state["state"] == "queued" and state["toName"] == "payments-api"
    assert store.message_state(by_id["id"])["to"] == old
    with store.take(new) as delivery:
        assert [m["id"] for m in delivery.messages] == [by_name["id"], urgent["id"]]
        assert all(m["to"] == new for m in delivery.messages)
        delivery.ack()
    assert store.message_state(by_name["id"])["state"] == "delivered"
    # the old session no longer holds the name: nothing moves, nothing changes
    assert store.move_name("payments-api", old, new) is None
    assert store.move_name("other", old, new) is None
    assert store.registry().names == {"payments-api": new, "other": other}


def test_move_name_leaves_mail_a_taker_has_claimed(store):
    old, new = sid(), sid()
    store.register(old, name="api")
    store.register(new, name="api-2")
    claimed = message(old, "claimed", toName="api", byName=True)
    waiting = message(old, "waiting", toName="api", byName=True)
    store.enqueue(old, claimed)
    delivery = store.take(old, budget=1)  # claims the first message only
    assert bodies(delivery.messages) == ["claimed"]
    delivery.close()  # left claimed, not acked
    store.enqueue(old, waiting)
    assert store.move_name("api", old, new) == [waiting["id"]]
    assert bodies(store.peek(new)) == ["waiting"]
    assert bodies(store.peek(old)) == ["claimed"]


def test_record_start_writes_marker_and_entry_and_names_the_session_after_its_dir(store, tmp_path):
    me, other = sid(), sid()
    project = str(tmp_path / "My App")
    started = store.record_start(me, project, "codex")
    assert (started["id"], started["dir"], started["tool"], started["name"]) == (me, project, "codex", "My-App")
    assert store.marker(project) == me
    assert store.record_start(other, str(tmp_path / "x" / "My App"), "claude")["name"] == "My-App-2"
    assert store.marker(str(tmp_path / "nowhere")) is None
    store.record_end(me)
    assert store.registry().agents[me]["endedAt"]
    again = store.record_start(me, project, "codex")  # resumed: running again, its name kept
    assert "endedAt" not in again and again["name"] == "My-App"
    with pytest.raises(RelayError, match="invalid tool"):
        store.record_start(me, project, "aider")


def test_record_end_of_an_unknown_session_writes_nothing(store):
    known = sid()
    store.register(known)
    store.record_end(sid())
    assert set(store.registry().agents) == {known}


def test_set_marker_points_a_dir_at_its_last_session(store, tmp_path):
    a, b = sid(), sid()
    store.set_marker(str(tmp_path), a)
    store.set_marker(str(tmp_path), b)
    assert store.marker(str(tmp_path)) == b


# -- mail -----------------------------------------------------------------------------------------


def test_enqueue_take_ack_and_the_receipts_follow(store):
    me = sid()
    assert not store.has_mail(me) and store.mail_stamp(me) is None
    sent = [message(me, f"hello {n}") for n in range(3)]
    for one in sent:
        store.enqueue(me, one)
    assert store.has_mail(me) and not store.has_urgent(me) and store.mail_stamp(me) is not None
    assert [m["id"] for m in store.peek(me)] == [m["id"] for m in sent]
    assert {m["state"] for m in store.peek(me)} == {"pending"}
    assert store.message_state(sent[0]["id"])["state"] == "queued"
    assert store.receipt(sent[0]["id"])["deliveredAt"] is None
    with store.take(me) as delivery:
        assert bodies(delivery.messages) == ["hello 0", "hello 1", "hello 2"]
        assert not any(m.get("redelivered") for m in delivery.messages)
        assert delivery.remaining == 0
        assert store.message_state(sent[1]["id"])["state"] == "taken"
        assert {m["state"] for m in store.peek(me)} == {"inflight"}
        delivery.ack()
    assert not store.has_mail(me) and store.peek(me) == []
    state = store.message_state(sent[2]["id"])
    assert state["state"] == "delivered" and state["deliveredAt"] and state["queuedAt"] == sent[2]["ts"]
    with store.take(me) as again:
        assert again.messages == [] and again.remaining == 0


def test_mail_stamp_changes_when_mail_arrives_or_leaves(store):
    me = sid()
    store.enqueue(me, message(me, "one"))
    first = store.mail_stamp(me)
    time.sleep(0.01)
    store.enqueue(me, message(me, "two"))
    second = store.mail_stamp(me)
    assert second is not None and second != first
    with store.take(me) as delivery:
        delivery.ack()
    assert store.mail_stamp(me) is None


def test_a_reply_marks_its_parent_replied_once(store):
    alice, bob = sid(), sid()
    question = message(bob, "ping?", **{"from": alice, "expectsReply": True})
    store.enqueue(bob, question)
    answer = message(alice, "pong", **{"from": bob, "replyTo": question["id"], "thread": question["id"]})
    store.enqueue(alice, answer)
    later = message(alice, "pong again", **{"from": bob, "replyTo": question["id"], "thread": question["id"]})
    store.enqueue(alice, later)
    state = store.message_state(question["id"])
    assert state["state"] == "replied" and state["replyId"] == answer["id"] and state["repliedAt"] == answer["ts"]


def test_close_without_ack_redelivers_the_same_ids_flagged_first(store):
    me = sid()
    first = message(me, "one")
    store.enqueue(me, first)
    with store.take(me) as delivery:
        assert [m["id"] for m in delivery.messages] == [first["id"]]
    second = message(me, "two")
    store.enqueue(me, second)
    assert [(m["body"], m["state"]) for m in store.peek(me)] == [("one", "inflight"), ("two", "pending")]
    with store.take(me) as delivery:
        assert [(m["id"], bool(m.get("redelivered"))) for m in delivery.messages] == [
            (first["id"], True),
            (second["id"], False),
        ]
        delivery.ack()
    assert not store.has_mail(me)


def test_a_partial_ack_keeps_the_rest_in_front_of_newer_mail_unflagged(store):
    me = sid()
    for n in range(4):
        store.enqueue(me, message(me, f"m{n}"))
    with store.take(me) as delivery:
        ids = [m["id"] for m in delivery.messages]
        store.enqueue(me, message(me, "newer"))  # arrives while the taker holds m0..m3
        delivery.ack(1)
    assert store.message_state(ids[0])["state"] == "delivered"
    assert store.message_state(ids[1])["state"] == "queued"
    with store.take(me) as delivery:
        assert bodies(delivery.messages) == ["m1", "m2", "m3", "newer"]
        assert [m["id"] for m in delivery.messages[:3]] == ids[1:]
        assert not any(m.get("redelivered") for m in delivery.messages)
        delivery.ack()
    assert store.peek(me) == []


def test_a_take_is_bounded_and_counts_what_remains(store):
    me = sid()
    for n in range(10):
        store.enqueue(me, message(me, f"{n}" * 1000))
    with store.take(me, budget=3000) as delivery:
        assert 1 <= len(delivery.messages) <= 3
        assert delivery.remaining == 10 - len(delivery.messages)
        taken = len(delivery.messages)
        delivery.ack()
    with store.take(me) as delivery:
        assert [str(m["body"])[0] for m in delivery.messages] == [str(n) for n in range(taken, 10)]
        delivery.ack()


def test_a_selective_take_leaves_the_rest_queued_in_order(store):
    me = sid()
    for body, urgent in (("plain 1", False), ("urgent", True), ("plain 2", False)):
        store.enqueue(me, message(me, body, **({"urgent": True} if urgent else {})))
    assert store.has_urgent(me)
    with store.take(me, select=is_urgent) as delivery:
        assert bodies(delivery.messages) == ["urgent"] and delivery.remaining == 2
        delivery.ack()
    assert not store.has_urgent(me)
    with store.take(me, select=is_urgent) as delivery:
        assert delivery.messages == []
    with store.take(me) as delivery:
        assert bodies(delivery.messages) == ["plain 1", "plain 2"]
        delivery.ack()


def test_mail_in_flight_comes_first_whatever_select_says(store):
    me = sid()
    for body in ("a", "b"):
        store.enqueue(me, message(me, body))
    store.take(me, select=lambda m: m["body"] == "a").close()  # claimed, never acked
    with store.take(me, select=lambda m: False) as delivery:
        assert [(m["body"], bool(m.get("redelivered"))) for m in delivery.messages] == [("a", True)]
        delivery.ack()
    assert bodies(store.peek(me)) == ["b"]


def test_peek_batch_stays_within_its_budget_and_counts_the_rest(store):
    me = sid()
    for n in range(5):
        store.enqueue(me, message(me, f"{n}" * 1000))
    shown, more = store.peek_batch(me, 2500)
    assert 1 <= len(shown) <= 3 and more == 5 - len(shown)
    assert store.peek_batch(me, None) == (store.peek(me), 0)
    assert len(store.peek(me)) == 5  # peeking took nothing


def test_over_the_quota_a_send_is_refused_and_nothing_is_dropped(store, monkeypatch):
    monkeypatch.setenv("RELAY_MAILBOX_MAX", "600")
    me = sid()
    kept = message(me, "x" * 300, toName="bob")
    store.enqueue(me, kept)
    refused = message(me, "y" * 300, toName="bob")
    with pytest.raises(RelayError, match="mailbox of bob is full"):
        store.enqueue(me, refused)
    assert store.receipt(refused["id"]) is None
    with store.take(me) as delivery:
        assert [m["id"] for m in delivery.messages] == [kept["id"]]
        with pytest.raises(RelayError, match="full"):  # claimed but not confirmed still counts
            store.enqueue(me, refused)
        delivery.ack()
    store.enqueue(me, refused)
    assert [m["id"] for m in store.peek(me)] == [refused["id"]]


def test_text_that_is_not_valid_unicode_is_refused_before_anything_is_queued(store):
    me = sid()
    with pytest.raises(RelayError, match="UTF-8"):
        store.enqueue(me, message(me, "\ud800"))
    assert not store.has_mail(me)


# -- receipts -------------------------------------------------------------------------------------


def test_receipts_are_found_by_prefix_and_pruned_when_old(store):
    me = sid()
    sent = message(me, "keep me a while")
    store.enqueue(me, sent)
    assert store.receipt_ids(sent["id"][:8].upper()) == [sent["id"]]
    assert store.receipt(new_uuid4()) is None and store.message_state("not-an-id") is None
    assert store.prune_receipts(3600) == 0 and store.receipt(sent["id"]) is not None
    assert store.prune_receipts(3600, now=time.time() + 7200) == 1
    assert store.receipt(sent["id"]) is None and store.receipt_ids(sent["id"][:8]) == []


# -- watchers, wakes, budgets ---------------------------------------------------------------------


HOLDER = """
import sys, time
kind, where, local, session, what = sys.argv[1:6]
if kind == "redis":
    from relay.store.redisdb import RedisStore
    store = RedisStore(where, home=local)
else:
    from relay.store.files import Store
    store = Store(where)
lock = store.claim_watch(session) if what == "watch" else store.claim_wake(session)
if lock is not None and what == "wake":
    lock.record(b"held by the holder")
print("held" if lock is not None else "busy", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(store, store_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start another process that claims a session's watcher slot or wake lock of this store and keeps
    it until the test ends (the locks exclude other processes: one process never excludes itself)."""
    children: list[subprocess.Popen] = []
    kind = "redis" if type(store).__name__ == "RedisStore" else "files"
    where = str(store.url) if kind == "redis" else str(store_home)

    def start(session: str, what: str) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, where, str(tmp_path / "local"), session, what],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])},
        )
        children.append(child)
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait(10)
        if child.stdout:
            child.stdout.close()


def test_one_watcher_slot_per_session(store, holder):
    me = sid()
    assert store.watcher(me) is None
    child = holder(me, "watch")
    assert store.claim_watch(me) is None
    assert store.watcher(me) == child.pid
    other = store.claim_watch(sid())  # another session's slot is its own
    assert other is not None
    other.release()
    child.kill()
    child.wait(10)
    assert store.watcher(me) is None
    mine = store.claim_watch(me)  # the kernel freed the dead holder's slot
    assert mine is not None  # (its holder never asks `watcher`: a second descriptor would drop the lock)
    mine.release()


def test_the_wake_lock_is_held_by_one_wake_and_carries_its_note(store, holder):
    me = sid()
    assert store.wake_note(me) == (False, b"")
    child = holder(me, "wake")
    assert store.claim_wake(me) is None
    assert store.wake_note(me) == (True, b"held by the holder")
    child.kill()
    child.wait(10)
    assert store.wake_note(me)[0] is False
    lock = store.claim_wake(me)
    assert lock is not None
    lock.record(b"mine")
    assert lock.note() == b"mine"
    lock.release()


def test_the_wake_budget_counts_and_never_overspends(store):
    me, other = sid(), sid()
    now = time.time()
    spent = [len(store.spend_wake(me, now - 3600, now + n * 0.001, 3)) for n in range(5)]
    assert spent == [0, 1, 2, 3, 3]  # the wakes each saw before its own; the last two were refused
    assert len(store.wake_times(me, now - 3600, now + 1)) == 3
    assert store.wake_times(me, now + 1, now + 2) == [] and store.wake_times(other, now - 3600, now + 1) == []


def test_auto_wakes_are_counted_per_session_and_reset(store):
    me, other = sid(), sid()
    assert store.auto_wakes(me) == 0
    assert [store.count_auto_wake(me), store.count_auto_wake(me)] == [1, 2]
    assert store.auto_wakes(me) == 2 and store.auto_wakes(other) == 0
    store.reset_auto_wakes(me)
    assert store.auto_wakes(me) == 0


# -- collection -----------------------------------------------------------------------------------


def test_retire_archives_undelivered_mail_and_forgets_the_session(store, tmp_path):
    gone, kept = sid(), sid()
    project = str(tmp_path / "old")
    store.record_start(gone, project, "claude")
    store.register(gone, name="old")
    store.register(kept, name="new")
    shown, *unread = [message(gone, text) for text in ("shown", "unread 1", "unread 2")]
    for one in (shown, *unread):
        store.enqueue(gone, one)
    with store.take(gone) as delivery:
        delivery.ack(1)
    with store.take(gone):
        pass  # claimed, never shown: still undelivered
    assert store.retire(gone) == 2
    registry = store.registry()
    assert set(registry.agents) == {kept} and registry.names == {"new": kept}
    assert store.marker(project) is None and not store.has_mail(gone)
    assert store.archive_location()
    # Mail set aside unread says so; it never passes for delivered.
    assert [store.message_state(m["id"])["state"] for m in unread] == ["archived", "archived"]
    assert store.message_state(shown["id"])["state"] == "delivered"


def test_gc_helpers_drop_empty_mailboxes_and_count_days(store):
    me = sid()
    store.enqueue(me, message(me, "read soon"))
    assert [size > 0 for _, size in store.mailbox_files()] == [True]
    assert not any(store.drop_empty_mailbox(name) for name, _ in store.mailbox_files())
    with store.take(me) as delivery:
        delivery.ack()
    assert [name for name, size in store.mailbox_files() if size] == []
    assert all(store.drop_empty_mailbox(name) for name, _ in store.mailbox_files())
    assert store.mailbox_files() == []
    assert store.gc_due(0) is False  # the first call only starts counting
    assert store.gc_due(0) is True and store.gc_due(3600) is False
    store.touch_gc_stamp()
    assert store.gc_due(3600) is False


def test_every_entry_of_this_store_is_on_this_host_and_facts_read_it(store):
    entry = store.register(sid(), name="one")
    assert store.on_this_host(entry)
    assert store.doorbells() is None or store.wake_host(entry) is None
    assert store.facts()


# ---- store api ----
# relay.store.contract: the store is chosen once from AGENT_RELAY_URL, and choosing it costs a local
# hook nothing (no typing, no redis-py).

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from relay.store.contract import open_store
store = open_store()
print(type(store).__module__, type(store).__name__, "redis" in sys.modules, "typing" in sys.modules)
"""


def _probe(env: dict[str, str], url: str | None) -> subprocess.CompletedProcess:
    merged = {k: v for k, v in env.items() if k != "AGENT_RELAY_URL"}
    if url is not None:
        merged["AGENT_RELAY_URL"] = url
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(REPO)],
        env=merged,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("url", [None, ""])
def test_without_a_url_the_file_store_is_chosen_and_nothing_heavy_is_imported(env, url):
    done = _probe(env, url)
    assert done.stdout.split() == ["relay.store.files", "Store", "False", "False"], done.stderr


def test_a_redis_url_chooses_the_redis_store(env):
    pytest.importorskip("redis")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)],
        # redis-py as this process finds it (the env fixture's PYTHONPATH names only the checkout)
        env={**env, "AGENT_RELAY_URL": "redis://:pw@127.0.0.1:1/0", "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split()[:3] == ["relay.store.redisdb", "RedisStore", "True"], done.stderr


def test_another_scheme_is_refused_without_echoing_the_value(env):
    done = _probe(env, "http://user:s3cret@example.com/")
    assert done.returncode != 0
    assert "must start with redis:// or rediss://" in done.stderr and "s3cret" not in done.stderr


# -- the journal (docs/journal.md) ------------------------------------------------------------------


def journal_event(n: int, ts: str | None = None, body: str = "b") -> dict:
    return {"ts": ts or now_iso(), "event": "sent", "id": f"e{n}", "body": body}


def test_the_journal_reads_back_in_order_and_resumes_after_its_cursor(store):
    assert store.journal_read(None) == ([], None)
    for n in range(3):
        store.journal_append(journal_event(n))
    events, cursor = store.journal_read(None)
    assert [e["id"] for e in events] == ["e0", "e1", "e2"]
    assert store.journal_read(cursor) == ([], cursor)
    store.journal_append(journal_event(3, body="ünïcode\nline"))
    events, later = store.journal_read(cursor)
    assert [(e["id"], e["body"]) for e in events] == [("e3", "ünïcode\nline")] and later != cursor
    store.journal_append(journal_event(4), journal_event(5), journal_event(6))  # a batch, one write
    assert [e["id"] for e in store.journal_read(later)[0]] == ["e4", "e5", "e6"]


def test_a_huge_body_is_cut_so_an_event_stays_bounded(store):
    from relay.store.journal_files import MAX_EVENT_BYTES

    store.journal_append(journal_event(0, body="x" * (3 * MAX_EVENT_BYTES)))
    store.journal_append(journal_event(1, body="\x01" * MAX_EVENT_BYTES))  # six bytes each once escaped
    store.journal_append({**journal_event(2), "detail": "d" * (2 * MAX_EVENT_BYTES)})
    store.journal_append(journal_event(3))
    cut, escaped, bare, after = store.journal_read(None)[0]
    assert cut["id"] == "e0" and len(cut["body"]) < MAX_EVENT_BYTES and "not journaled" in cut["body"]
    assert escaped["body"].startswith("\x01" * 1000) and "not journaled" in escaped["body"]
    assert (bare["id"], bare["detail"], bare.get("body")) == ("e2", "too large to journal", None)
    assert after["id"] == "e3"


def test_pruning_the_journal_keeps_the_last_days_and_zero_drops_it_all(store):
    now = time.time()
    store.journal_append(journal_event(0))
    assert store.journal_prune(14, now) == 0
    assert [e["id"] for e in store.journal_read(None)[0]] == ["e0"]
    assert store.journal_prune(14, now + 20 * 86400) >= 1
    assert store.journal_read(None)[0] == []
    store.journal_append(journal_event(1))
    assert store.journal_prune(0, now) >= 1
    assert store.journal_read(None)[0] == []
