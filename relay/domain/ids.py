"""Validation of session ids and session names.

Both CLIs mint UUIDs. An id that reaches a file name or another program's argv must be one, so
that a planted, flag-shaped id such as `--config=evil` can never become an option of `claude`.
"""

import posix  # the C module under os: the hook's path never imports os (docs/startup.md)

from relay.util.errors import RelayError

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads these
if TYPE_CHECKING:
    from typing import TypeGuard

# The agent CLIs relay serves: the one list every face and the store check a `tool` against.
AGENT_CLIS = ("claude", "codex", "gemini", "qwen", "opencode")

# The one spelling of a session id (docs/store.md); the MCP tools' JSON Schemas advertise this same text.
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_HEX = frozenset(_HEX_DIGITS)
_DASHES = (8, 13, 18, 23)
# Anywhere an id is accepted, the start of one with at least this many hex digits will do when it
# names exactly one known id (relay.usecases.addressing resolves it; a registered name is looked up first).
MIN_ID_PREFIX = 8

MAX_NAME_CHARS = 64
# Names are typed into shells and shown to models (docs/security.md): only characters no shell, terminal
# or fence gives a meaning to.
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
# Names that would pass a session off as a person, relay itself or the CLI (mail from the CLI is
# `fromName: "cli"`); compared by name_key, so `Relay.`, `session_relay` and `SessionRelay` are reserved too.
RESERVED_NAMES = ("cli", "user", "system", "relay", "session-relay")


def name_key(name: str) -> str:
    """What two names are compared by: case ignored. Two sessions never hold names with one key,
    and a lookup by name finds its session in any case (`PAYMENTS-API` reaches `payments-api`)."""
    return name.lower()


def _reserved_key(name: str) -> str:
    """A name lower-cased without '-', '_' and '.': the spellings that read as one word to a person."""
    return name.lower().replace("-", "").replace("_", "").replace(".", "")


_RESERVED_KEYS = frozenset(_reserved_key(n) for n in RESERVED_NAMES)


def is_reserved(name: str) -> bool:
    """Would `name` pose as a person, the CLI or relay itself (in any case or punctuation)?"""
    return _reserved_key(name) in _RESERVED_KEYS


def looks_like_id(name: str) -> bool:
    """Does `name` read as an id or the start of one: 8 or more hex digits and nothing else, or a
    UUID's first part with its dashes in place? Such a name would shadow the id prefixes a person
    types (`relay send 3f1b414d`), so no session may hold one."""
    hex_only = len(name) >= MIN_ID_PREFIX and all(ch in _HEX for ch in name)
    return hex_only or prefix_digits(name) >= MIN_ID_PREFIX


def is_uuid(value: object) -> "TypeGuard[str]":
    """True for a canonical 8-4-4-4-12 hex UUID string (any version, any case): UUID_PATTERN,
    checked without importing re on the hook's path (tests/domain/test_ids.py holds them equal).

    Delivering one message checks several ids, so this runs in C string methods only, no per-character
    Python loop: with the four dashes in place and removed, nothing may be left once hex digits are
    stripped (a fifth dash anywhere is left too)."""
    return (
        isinstance(value, str)
        and len(value) == 36
        and value[8] == value[13] == value[18] == value[23] == "-"
        and not value.replace("-", "", 4).strip(_HEX_DIGITS)
    )


# OpenCode's session ids: `ses_` and 26 letters or digits (case matters: they are never lowered).
OPENCODE_ID_PREFIX = "ses_"
OPENCODE_ID_CHARS = 26
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
OPENCODE_ID_PATTERN = "^ses_[0-9A-Za-z]{26}$"
# Either spelling of a session id, for the MCP tools' JSON Schemas.
SESSION_ID_PATTERN = (
    "^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|ses_[0-9A-Za-z]{26})$"
)


def is_opencode_id(value: object) -> "TypeGuard[str]":
    """True for an OpenCode session id: exactly `ses_` + 26 [0-9A-Za-z] (OPENCODE_ID_PATTERN)."""
    return (
        isinstance(value, str)
        and len(value) == len(OPENCODE_ID_PREFIX) + OPENCODE_ID_CHARS
        and value.startswith(OPENCODE_ID_PREFIX)
        and all(ch in _ALNUM for ch in value[len(OPENCODE_ID_PREFIX) :])
    )


def is_session_id(value: object) -> "TypeGuard[str]":
    """True for anything relay accepts as a session id: a UUID (Claude, Codex, ...) or an OpenCode
    id. Message ids stay UUIDs only (is_uuid)."""
    return is_uuid(value) or is_opencode_id(value)


def prefix_digits(value: object) -> int:
    """How many hex digits `value` holds when it reads as the start of an id (8-4-4-4-12, its
    dashes in place), else 0. The one shape test for id prefixes, without re on the hook's path."""
    if not isinstance(value, str) or not 0 < len(value) <= 36:
        return 0
    for at, ch in enumerate(value):
        if (ch != "-") if at in _DASHES else (ch not in _HEX):
            return 0
    return len(value) - value.count("-")


def is_id_prefix(value: object) -> "TypeGuard[str]":
    """True for the start of an id long enough to look up (MIN_ID_PREFIX hex digits), not a whole id."""
    return prefix_digits(value) >= MIN_ID_PREFIX and not is_uuid(value)


# Said wherever a value that looks like the start of an id is too short to look up.
PREFIX_RULE = f"an id prefix needs at least {MIN_ID_PREFIX} hex characters of the id (or give the whole id)"


def new_uuid4() -> str:
    """A random (version 4) UUID, without importing the uuid module on the hot path."""
    raw = bytearray(posix.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SessionId(str):
    """A session id that passed `require_uuid`: a canonical, lower-case UUID.

    Made once where an id enters relay (a face reading argv, an MCP argument, hook stdin; a use case
    reading an id it resolved from the registry or a marker) and trusted from there on: the store's
    methods take a SessionId and never check it again. Only `require_uuid` builds one (a fresh id is
    `require_uuid(new_uuid4())`); `SessionId(text)` elsewhere would skip the check, so don't.
    A plain str subclass with no state of its own, so making one costs one small allocation."""

    __slots__ = ()


def require_uuid(value: object, what: str = "session id") -> SessionId:
    """The id in canonical (lower-case) form when `value` is a UUID, else an error saying what a
    valid id looks like. Both CLIs mint lower-case ids; an upper-case spelling of the same id must
    reach the same mailbox, so every id is lowered where it enters. An OpenCode id
    (is_opencode_id) is kept as written: its letters' case is part of it."""
    if is_opencode_id(value):
        return SessionId(value)
    if not is_uuid(value):
        raise RelayError(
            f"invalid {what} {value!r}: expected a UUID like "
            "123e4567-e89b-12d3-a456-426614174000, or an OpenCode id: ses_ and 26 letters or digits "
            "(see `relay discover` or `relay list`)"
        )
    return SessionId(value.lower())


def check_name(name: object) -> str:
    """Return a usable session name or raise (docs/security.md).

    Names are typed on command lines and shown to models, so they are 1-64 characters of
    [A-Za-z0-9._-], never look like a flag, a path (`.`, `..`) or an id or the start of one (8+ hex
    digits), and never pose as a person, the CLI or relay itself (is_reserved).
    """
    rule = "use 1-64 letters, digits, '.', '_' or '-', such as `backend`"
    if not isinstance(name, str) or not name:
        raise RelayError(f"invalid name: give a non-empty name; {rule}")
    if len(name) > MAX_NAME_CHARS:
        raise RelayError(f"invalid name: at most {MAX_NAME_CHARS} characters; {rule}")
    bad = sorted({ch for ch in name if ch not in NAME_CHARS})
    if bad:
        shown = "".join(bad).encode("unicode_escape").decode("ascii")
        raise RelayError(f"invalid name {name!r}: characters {shown!r} are not allowed; {rule}")
    if name.startswith("-"):
        raise RelayError(f"invalid name {name!r}: a name cannot start with '-'; {rule}")
    if name in (".", ".."):
        raise RelayError(f"invalid name {name!r}: a name cannot be '.' or '..'; {rule}")
    if is_session_id(name):
        raise RelayError(f"invalid name {name!r}: a name cannot be a session id; {rule}")
    if looks_like_id(name):
        raise RelayError(
            f"invalid name {name!r}: a name cannot read as a session id or its start ({MIN_ID_PREFIX} or "
            f"more hex digits); {rule}"
        )
    if is_reserved(name):
        raise RelayError(
            f"invalid name {name!r}: {', '.join(RESERVED_NAMES)} are reserved (in any case, with or without "
            "'-', '_' or '.'); choose another name"
        )
    return name


# The name a session starts with when its dir's base name leaves nothing usable (or is an id); it is
# also the prefix of an auto-name that would read as an id (`90068f62` -> `session-90068f62`).
FALLBACK_NAME = "session"


def _name_base(text: str) -> str:
    """`text` made to fit the name rule: accents dropped, every other character outside NAME_CHARS
    turned into '-', runs of '-' joined, the ends trimmed of '-', '.', '_', at most 64 characters."""
    if not text.isascii():
        import unicodedata  # only for a non-ASCII dir name

        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    mapped = "".join(ch if ch in NAME_CHARS else "-" for ch in text)
    while "--" in mapped:
        mapped = mapped.replace("--", "-")
    base = mapped.strip("-._")[:MAX_NAME_CHARS].rstrip("-._")
    if not base or is_session_id(base):
        return FALLBACK_NAME
    if looks_like_id(base):
        return f"{FALLBACK_NAME}-{base}"[:MAX_NAME_CHARS]
    return base


def dir_name(directory: str) -> str:
    """The name a session in `directory` is after, before any `-2` suffix: the project's name."""
    return _name_base(directory.rstrip("/").rpartition("/")[2])  # its last component, as basename


def auto_suffixed(name: str, base: str) -> bool:
    """Is `name` the project name `base` with a number added to tell it apart (`api-2` for `api`)?"""
    head, dash, number = name.rpartition("-")
    if not dash or not number.isdigit():
        return False
    return name_key(head) == name_key(base[: MAX_NAME_CHARS - 1 - len(number)].rstrip("-._"))


def numbered_in_dir(name: object, directory: object) -> bool:
    """Is `name` (an entry's) the numbered one a session in `directory` got because its project's
    name was held (`api-2` in a dir named `api`)? Only such a session may take the project's name
    over (relay.usecases.names); a test of two strings, so the hook makes it at every start
    before it loads anything for that."""
    return isinstance(name, str) and isinstance(directory, str) and auto_suffixed(name, dir_name(directory))


def name_from_dir(directory: str, taken: "set[str]") -> str:
    """A session's first name: its project dir's base name, made safe (`My App` -> `My-App`) and
    unique: `api`, then `api-2`, `api-3`, ... A session is addressable by name from its start.

    `taken` holds the name_key of each name in use; a reserved name counts as taken (`relay` -> `relay-2`),
    and names differing only in case count as one, so no two sessions look alike in `relay list`.
    A base name that reads as an id gets a `session-` prefix (`90068f62` -> `session-90068f62`).
    """
    base = dir_name(directory)
    candidate, number = base, 2
    while name_key(candidate) in taken or is_reserved(candidate):
        suffix = f"-{number}"
        candidate = base[: MAX_NAME_CHARS - len(suffix)].rstrip("-._") + suffix
        number += 1
    return candidate
