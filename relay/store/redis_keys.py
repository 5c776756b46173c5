"""Every Redis key relay uses is named here, and only here: the Redis store, its doorbell streams
and their scripts take their key names from these functions, so the layout (docs/redis-store.md)
cannot drift between two spellings of one key. All keys live under `relay:` in one database."""

AGENTS = "relay:agents"  # HASH id -> Entry JSON
NAMES = "relay:names"  # HASH name -> id
MARKERS = "relay:markers"  # HASH absolute dir -> session id
JOURNAL = "relay:journal"  # STREAM of journal events (field `e`), capped (docs/journal.md)


def mbox(session_id: str) -> str:
    """STREAM of a session's pending and claimed mail (field `m`)."""
    return f"relay:mbox:{session_id}"


def mbytes(session_id: str) -> str:
    """Bytes of mail in that stream: the RELAY_MAILBOX_MAX quota."""
    return f"relay:mbytes:{session_id}"


def urgent(session_id: str) -> str:
    """SET of the stream ids of urgent mail still in the stream."""
    return f"relay:urgent:{session_id}"


def receipt(message_id: str) -> str:
    """HASH of one message's receipt."""
    return f"relay:rcpt:{message_id}"


def take_lock(session_id: str) -> str:
    """Held by one taker while it claims."""
    return f"relay:takelock:{session_id}"


def quarantine(session_id: str) -> str:
    """LIST of stream entries set aside unread (too large, or not parsing), kept for a human."""
    return f"relay:quarantine:{session_id}"


def archive(session_id: str) -> str:
    """LIST of a retired session's undelivered mail, never deleted."""
    return f"relay:archive:{session_id}"


def auto_wakes(session_id: str) -> str:
    """The count of turns relay started by itself in a session."""
    return f"relay:autowakes:{session_id}"


def wakes(session_id: str) -> str:
    """ZSET of a session's recent wakes (the wake budget)."""
    return f"relay:wakes:{session_id}"


def gc_stamp(host: str) -> str:
    """When `host` last collected."""
    return f"relay:gcstamp:{host}"


def doorbell(host: str) -> str:
    """STREAM of wake requests for the sessions on `host`."""
    return f"relay:doorbell:{host}"


def doorbell_alive(host: str) -> str:
    """The pid and start of `host`'s one doorbell server, while it lives."""
    return f"relay:doorbell-alive:{host}"


def doorbell_answers(request_id: str) -> str:
    """LIST of a doorbell server's answers to one wake request."""
    return f"relay:doorbell-answer:{request_id}"
