"""relay.usecases.journal in-process, on both stores: the `renamed` event a name move records (the move
itself calls it), the reader's filters, and the setting that turns journaling off."""

import pytest

from relay.domain.ids import new_uuid4
from relay.usecases import journal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI


@pytest.fixture(params=["files", "redis"])
def store(request: pytest.FixtureRequest, env, store_home, tmp_path) -> "StoreAPI":
    if request.param == "redis":
        from relay.store.redisdb import RedisStore

        return RedisStore(request.getfixturevalue("redis_url"), home=str(tmp_path / "local"))
    from relay.store.files import Store

    return Store(store_home)


def test_a_name_move_is_journaled_as_renamed(store):
    old, new = new_uuid4(), new_uuid4()
    journal.renamed(store, "payments-api", old, new, 2)
    [event] = journal.events(store)[0]
    assert list(event) == list(journal.FIELDS)
    assert event["event"] == "renamed"
    assert (event["from"], event["fromName"], event["to"], event["toName"]) == (
        old,
        "payments-api",
        new,
        "payments-api",
    )
    assert "2 queued messages moved" in event["detail"] and event["body"] is None
    assert [e["event"] for e in journal.events(store, None, journal.Filter(ids={new}))[0]] == ["renamed"]
    assert journal.events(store, None, journal.Filter(names={"web"}))[0] == []
    assert len(journal.events(store, None, journal.Filter(names={"payments-api"}))[0]) == 1


def test_the_reader_resumes_after_its_cursor(store):
    message = {"id": new_uuid4(), "from": None, "fromName": "cli", "to": new_uuid4(), "toName": "api", "body": "hi"}
    journal.sent(store, message)
    first, cursor = journal.events(store)
    assert [e["body"] for e in first] == ["hi"] and first[0]["thread"] == message["id"]
    journal.delivered(store, [{**message, "redelivered": True}])
    later, _ = journal.events(store, cursor)
    assert [(e["event"], e["detail"]) for e in later] == [("delivered", "redelivered")]


def test_journal_days_zero_records_nothing(store, monkeypatch):
    monkeypatch.setenv("RELAY_JOURNAL_DAYS", "0")
    journal.renamed(store, "api", new_uuid4(), new_uuid4(), 0)
    monkeypatch.delenv("RELAY_JOURNAL_DAYS")
    assert journal.events(store)[0] == []


def everything_stored(store: "StoreAPI") -> bytes:
    """Every byte the store holds: each file under its home, or each value of each Redis key."""
    from pathlib import Path

    from relay.store.files import Store

    if isinstance(store, Store):
        return b"".join(p.read_bytes() for p in Path(store.home).rglob("*") if p.is_file())
    client = store._redis()  # type: ignore[attr-defined]
    held = []
    for key in client.scan_iter(match="*"):
        kind = client.type(key).decode()
        if kind == "string":
            held.append(client.get(key))
        elif kind == "hash":
            held += [*client.hgetall(key).values()]
        elif kind == "list":
            held += client.lrange(key, 0, -1)
        elif kind == "set":
            held += list(client.smembers(key))
        elif kind == "zset":
            held += client.zrange(key, 0, -1)
        elif kind == "stream":
            held += [value for _, fields in client.xrange(key) for value in fields.values()]
    return b"\n".join(held)


@pytest.mark.parametrize("days", ["0", "14"])
def test_with_the_journal_off_a_delivered_body_is_kept_nowhere(store, monkeypatch, days):
    from relay.domain.ids import require_uuid
    from relay.usecases.mail import deliver, send

    monkeypatch.setenv("RELAY_JOURNAL_DAYS", days)
    recipient = require_uuid(new_uuid4())
    store.register(recipient, name="api")
    body = "a-body-to-forget-7d1c"
    send(store, "api", body, None, "cli")
    assert body.encode() in everything_stored(store)
    assert deliver(store, recipient, lambda batch, remaining: len(batch)) == 1
    assert (body.encode() in everything_stored(store)) == (days != "0")
