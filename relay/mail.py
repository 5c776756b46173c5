"""Composing, sending and taking messages, shared by every face."""

from relay.clock import now_iso
from relay.errors import RelayError
from relay.ids import new_uuid4
from relay.sessions import resolve
from relay.store import Entry, Message, Store

# A message must fit whole in the hook's context budget (32 KiB of mail text) with room for
# its header line and the fence, and one agent must not flood another's context.
MAX_BODY_BYTES = 24 * 1024


def check_body(body: object) -> str:
    """The body when it can be queued; otherwise a one-line error saying why."""
    if not isinstance(body, str) or not body.strip():
        raise RelayError("empty message: give the text to send")
    if "\x00" in body:
        raise RelayError("message contains a NUL byte: send plain text")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise RelayError("message is not valid UTF-8: send plain text") from None
    if size > MAX_BODY_BYTES:
        raise RelayError(
            f"message too long ({size} bytes; the limit is {MAX_BODY_BYTES}): "
            "shorten it, or write the details to a file and send its path"
        )
    return body


def send(store: Store, target: str, body: str, sender_id: str | None, sender_name: str | None) -> tuple[Entry, Message]:
    """Queue `body` for `target`; returns the recipient entry and the stored message."""
    body = check_body(body)
    recipient = resolve(store, target)
    message = {
        "id": new_uuid4(),
        "ts": now_iso(),
        "from": sender_id,
        "fromName": sender_name,
        "to": recipient["id"],
        "toName": recipient.get("name"),
        "body": body,
    }
    store.enqueue(recipient["id"], message)
    return recipient, message
