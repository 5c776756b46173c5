"""Composing, sending and delivering messages, shared by every face.

Delivery has one protocol, here, for the hook, `relay inbox` and the MCP `inbox` tool alike:
take a bounded batch, show what fits one result, and confirm only what was shown, only once it
was written. A new face (another hook event) passes its own `show` and adds no copy of it.
"""

from relay.domain.ids import SessionId, is_uuid, new_uuid4, require_uuid
from relay.store.files import Entry, Message
from relay.util.clock import now_iso
from relay.util.errors import RelayError

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from _collections_abc import Callable

    from relay.store.contract import StoreAPI
    from relay.store.files import Select, Show

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


def send(
    store: "StoreAPI",
    target: str,
    body: str,
    sender_id: str | None,
    sender_name: str | None,
    urgent: bool = False,
    hops: int = 0,
    reply_to: str | None = None,
    expects_reply: bool = False,
) -> tuple[Entry, Message]:
    """Queue `body` for `target`; returns the recipient entry and the stored message.

    `urgent` mail may interrupt a recipient between tool calls (relay.domain.policy); `hops` counts the
    wakes behind the sending process (relay.domain.loopguard); `reply_to` names the message this answers,
    whose thread it joins (a new message starts its own). Optional fields are written only when
    set, so ordinary mail keeps 0.1's shape."""
    # Resolving names is for sending only: the hook's take and show never load it.
    from relay.usecases.addressing import by_name, resolve

    body = check_body(body)
    parent = answered(store, reply_to, sender_id) if reply_to is not None else None
    recipient = resolve(store, target)
    message_id = new_uuid4()
    message: Message = {
        "id": message_id,
        "ts": now_iso(),
        "from": sender_id,
        "fromName": sender_name,
        "to": recipient["id"],
        "toName": recipient.get("name"),
        "body": body,
    }
    if by_name(target, recipient):  # mail to a name follows it to the project's next session
        message["byName"] = True
    if parent is not None:  # a new message starts its own thread: its id, left implicit (0.1's shape)
        message["replyTo"] = parent["id"]
        message["thread"] = thread_of(parent)
    if expects_reply:
        message["expectsReply"] = True
    if urgent:
        message["urgent"] = True
    if hops:
        message["hops"] = hops
    # `resolve` read the id from the registry (or the caller's whole id): checked here, where it enters.
    store.enqueue(require_uuid(recipient["id"], "recipient id"), message)
    from relay.usecases import journal

    journal.sent(store, message)
    return recipient, message


def thread_of(message: Message) -> object:
    """The id of the first message of this message's conversation."""
    return message.get("thread") or message.get("id")


def quoted_id(message_id: object) -> str:
    """A message id for an error line: a UUID as it is, anything else quoted and cut short."""
    return message_id if is_uuid(message_id) else repr(str(message_id)[:40])


def answered(store: "StoreAPI", message_id: str, viewer: str | None) -> Message:
    """The receipt of the message a reply answers; an error when there is none `viewer` may see."""
    from relay.usecases.addressing import seen_by

    receipt = seen_by(store, message_id, viewer)
    if receipt is None:
        raise RelayError(
            f"no message {quoted_id(message_id)} to reply to: replyTo takes the id of a message you received "
            "(shown after `id` in its `- from` line, or as `id` in inbox)"
        )
    return receipt


# Every delivered result (hook text, `inbox` JSON) stays within this many bytes: clients cut
# bigger tool results, and mail confirmed but cut off would be lost unseen.
RESULT_BUDGET = 32 * 1024


def open_delivery(
    store: "StoreAPI", recipient: SessionId, show: "Show", select: "Select | None" = None
) -> "Callable[[bool], int]":
    """Take a batch and show it now; the returned `confirm(written)` acks what was shown, only
    when the output really was written, and releases the mailbox. Returns how many were acked.

    For a face that writes its output after this returns (the MCP server confirms once its
    answer is on the wire); everyone else calls `deliver`. `recipient` is a SessionId its face made
    at the edge: the hook's event, the CLI's argument, the bus's identity.
    `select` narrows what is taken (a hook event that may deliver only urgent mail).
    """
    delivery = store.take(recipient, select=select)
    try:
        shown = show(delivery.messages, delivery.remaining)
    except BaseException:
        delivery.close()  # nothing confirmed: the batch stays in flight for the next taker
        raise

    def confirm(written: bool) -> int:
        with delivery:
            if not (written and shown):
                return 0
            delivery.ack(shown)
        from relay.usecases import journal

        journal.delivered(store, delivery.messages[:shown])
        return shown

    return confirm


def deliver(store: "StoreAPI", recipient: SessionId, show: "Show", select: "Select | None" = None) -> int:
    """take -> show -> confirm: `show` writes the output and returns how many it showed."""
    return open_delivery(store, recipient, show, select)(True)


def fit(count: int, size: "Callable[[int], int]", budget: int = RESULT_BUDGET) -> int:
    """The largest k <= count (at least 1 when count > 0) whose output `size(k)` fits `budget`."""
    if count == 0 or size(count) <= budget:
        return count
    low, high = 1, count  # size(high) is known too big; find the largest that fits
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) <= budget:
            low = middle
        else:
            high = middle
    return low


def cut_body(message: Message, size: "Callable[[Message], int]", budget: int = RESULT_BUDGET) -> Message:
    """A copy of a message too big for one result, its body shortened (and saying so) to fit.

    Only mail queued by an older relay (or planted) can be this big: `check_body` keeps new mail
    well under the budget.
    """
    body = str(message.get("body", ""))
    low, high = 0, len(body)
    best = dict(message, body="[...]")
    while low <= high:
        middle = (low + high) // 2
        candidate = dict(
            message, body=f"{body[:middle]} [... {len(body) - middle} more characters cut: too long for one result]"
        )
        if size(candidate) <= budget:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def fit_output(
    batch: list[Message],
    build: "Callable[[list[Message]], tuple[object, int]]",
    size: "Callable[[object], int]",
    budget: int = RESULT_BUDGET,
) -> tuple[object, int]:
    """The output `build` makes of as many of the batch's first messages as fit `budget` (a lone
    message too big for it shown cut), and how many messages that output holds.

    Every face (hook text, CLI and MCP inbox) fits its own output through this one rule.
    """
    built: dict[int, tuple[tuple[object, int], int]] = {}  # k -> (build of k messages, its size)

    def sized(k: int) -> tuple[tuple[object, int], int]:
        if k not in built:  # each prefix is built and measured once (the hook would render twice)
            made = build(batch[:k])
            built[k] = made, size(made[0])
        return built[k]

    count = fit(len(batch), lambda k: sized(k)[1], budget)
    (output, shown), measured = sized(count)
    if count and measured > budget:
        output, shown = build([cut_body(batch[0], lambda m: size(build([m])[0]), budget)])
    return output, shown
