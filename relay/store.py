"""The on-disk store under `<home>`: the only module that reads or writes its files.

Layout (the session-relay 0.1 format, so an upgrade keeps registrations and unread mail):

    registry.json          {"agents": {id: Entry}, "names": {name: id}}
    mailbox/<id>.jsonl     pending mail, one JSON message per line
    markers/<encoded-dir>  "<session-id>\\n", the session last registered for that dir
    .lock                  the lock file every mutation holds

Added by this version, ignored by 0.1 readers:

    inflight/<id>.jsonl    mail a taker has claimed but not yet confirmed as shown
    inflight/<id>.lock     held by the one live taker of that mailbox
    quarantine/            unparseable mailbox lines and registries, kept for a human

Delivery is at-least-once: taking mail moves it to `inflight/` under the lock, the caller shows
it, and only its `ack` removes it. A taker that dies before the ack leaves the mail in flight; the
next taker delivers it again, first and with the same ids, marked `"redelivered": true`.
"""

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from relay import durable
from relay.clock import now_iso
from relay.errors import LockBusy, RelayError
from relay.faults import checkpoint
from relay.ids import check_name, require_uuid
from relay.lock import FileLock
from relay.paths import mailbox_name, marker_name, relay_home

# JSON objects as stored; `object` rather than typing.Any keeps typing off the hook's import path.
Entry = dict[str, object]
Message = dict[str, object]

TOOLS = ("claude", "codex")
_UNSET = object()


def _warn_to_stderr(message: str) -> None:
    sys.stderr.write(f"session-relay: {message}\n")


class Registry:
    """A read-only view of registry.json."""

    def __init__(self, data: dict) -> None:
        self.agents: dict[str, Entry] = data["agents"]
        self.names: dict[str, str] = data["names"]

    def resolve(self, target: str) -> Entry | None:
        """An exact id first, then a name."""
        if target in self.agents:
            return self.agents[target]
        bound = self.names.get(target)
        if bound is None:
            return None
        return self.agents.get(bound) or {"id": bound, "dir": None, "name": target, "tool": None}

    def entries(self) -> list[Entry]:
        """Every entry, sorted by name, else id."""
        return sorted(self.agents.values(), key=lambda e: str(e.get("name") or e.get("id")))


# Mailboxes this process is taking right now. fcntl locks do not exclude within one process (and
# closing any descriptor of a file drops them all), so a second take here must not touch the lock.
_TAKING: set[str] = set()


class Delivery:
    """Mail claimed by one taker, who holds that mailbox's take lock until `close`.

    `ack(n)` confirms the first n messages were shown; closing without an ack leaves them in
    flight for the next taker. A Delivery without a lock claimed nothing (the mailbox is already
    being taken in this process) and its ack does nothing.
    """

    def __init__(
        self, store: "Store", recipient: str, lines: list[bytes], messages: list[Message], lock: FileLock | None
    ) -> None:
        self._store = store
        self._recipient = recipient
        self._lines = lines
        self._lock = lock
        self.messages = messages

    def ack(self, count: int | None = None) -> None:
        """Remove the first `count` messages (all by default); the rest go back to the queue front."""
        if self._lock is None:
            return
        shown = len(self.messages) if count is None else count
        checkpoint("take:before-ack")
        self._store._finish_take(self._recipient, self._lines[shown:])
        checkpoint("take:acked")

    def close(self) -> None:
        """Release the mailbox for the next taker."""
        if self._lock is not None:
            self._lock.release()
            _TAKING.discard(self._lock.path)
            self._lock = None

    def __enter__(self) -> "Delivery":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _to_json(value: object, indent: int | None = None) -> bytes:
    """Serialise for the store; text that is not valid Unicode is refused before anything is written.

    The standard json module, not orjson: the store's documents are small, and importing orjson
    costs more of every hook start than all of its parsing saves.
    """
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise RelayError("text is not valid UTF-8 (it holds a lone surrogate); send plain text") from None


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def _split_lines(data: bytes) -> tuple[list[bytes], list[Message], list[bytes]]:
    """Parse mailbox bytes into (good raw lines, their messages, unparseable lines)."""
    good: list[bytes] = []
    messages: list[Message] = []
    bad: list[bytes] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            message = json.loads(raw)
        except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            bad.append(raw)
            continue
        if isinstance(message, dict):
            good.append(raw)
            messages.append(message)
        else:
            bad.append(raw)
    return good, messages, bad


def _check_registry(data: object) -> dict | None:
    """The registry with both maps present, or None when its shape is not the store's."""
    if not isinstance(data, dict):
        return None
    agents = data.setdefault("agents", {})
    names = data.setdefault("names", {})
    if not isinstance(agents, dict) or not isinstance(names, dict):
        return None
    if not all(isinstance(e, dict) for e in agents.values()):
        return None
    if not all(isinstance(i, str) for i in names.values()):
        return None
    return data


class Store:
    """One store directory. Methods that change anything hold the store lock."""

    def __init__(
        self, home: str | os.PathLike[str] | None = None, warn: Callable[[str], None] = _warn_to_stderr
    ) -> None:
        self.home = os.fspath(home) if home is not None else relay_home()
        self.warn = warn
        self._held = False

    # -- locking and layout -------------------------------------------------------------------

    @contextmanager
    def _locked(self, prepare: bool = True) -> Iterator[None]:
        if self._held:
            yield
            return
        if prepare:
            self._prepare()
        with FileLock(self._path(".lock")):
            self._held = True
            try:
                yield
            finally:
                self._held = False

    def _prepare(self) -> None:
        durable.ensure_private_dir(self.home, allow_symlink=True)
        for sub in ("mailbox", "markers", "inflight"):
            durable.ensure_private_dir(self._path(sub))

    def _path(self, *parts: str) -> str:
        return os.path.join(self.home, *parts)

    def _mailbox(self, session_id: str) -> str:
        return self._path("mailbox", mailbox_name(session_id))

    def _inflight(self, session_id: str) -> str:
        return self._path("inflight", mailbox_name(session_id))

    # -- registry -----------------------------------------------------------------------------

    def registry(self) -> Registry:
        """The current registry (empty when there is none yet)."""
        data = self._parse_registry()
        if data is None:
            with self._locked():
                data = self._load_registry()
        return Registry(data)

    def _parse_registry(self) -> dict | None:
        """The parsed registry, `{}`-shaped when absent, None when it is corrupt."""
        raw = durable.read_file(self._path("registry.json"))
        if raw is None:
            return {"agents": {}, "names": {}}
        try:
            return _check_registry(json.loads(raw))
        except ValueError:
            return None

    def _load_registry(self) -> dict:
        """Under the lock: the registry, moving a corrupt one aside (once) so it is never overwritten."""
        data = self._parse_registry()
        if data is not None:
            return data
        path = self._path("registry.json")
        kept = self._quarantine_path(f"registry.json.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        durable.move_aside(path, kept)
        self.warn(
            f"registry.json did not parse; it was kept as {kept} and a new registry was started. "
            "Repair that file by hand to recover the old registrations."
        )
        return {"agents": {}, "names": {}}

    def _quarantine_path(self, stem: str) -> str:
        directory = self._path("quarantine")
        durable.ensure_private_dir(directory)
        return os.path.join(directory, f"{stem}-{time.time_ns()}")

    def register(
        self,
        session_id: str,
        *,
        directory: str | None = _UNSET,
        name: str | None = _UNSET,
        tool: str = _UNSET,
    ) -> Entry:
        """Upsert one entry: fields not given keep their value, lastSeen is refreshed.

        A name given is bound to this id, moving it off any other session and dropping any other
        name this session had.
        """
        session_id = require_uuid(session_id)
        if name is not _UNSET and name is not None:
            check_name(name)
        if tool is not _UNSET and tool not in TOOLS:
            raise RelayError(f"invalid tool {tool!r}: use claude or codex")
        if directory is not _UNSET and directory is not None and not directory.startswith("/"):
            raise RelayError(f"invalid dir {directory!r}: give an absolute path")
        with self._locked():
            data = self._load_registry()
            agents, names = data["agents"], data["names"]
            entry = agents.get(session_id) or {"id": session_id, "dir": None, "name": None, "tool": "claude"}
            if directory is not _UNSET:
                entry["dir"] = directory
            if tool is not _UNSET:
                entry["tool"] = tool
            if name is not _UNSET:
                self._bind_name(agents, names, session_id, name)
                entry["name"] = name
            entry["lastSeen"] = now_iso()
            agents[session_id] = entry
            checkpoint("register:before-write")
            durable.atomic_write(self._path("registry.json"), _to_json(data, indent=2) + b"\n")
            return dict(entry)

    @staticmethod
    def _bind_name(agents: dict[str, Entry], names: dict[str, str], session_id: str, name: str | None) -> None:
        for old_name, bound in list(names.items()):
            if bound == session_id and old_name != name:
                del names[old_name]
        if name is None:
            return
        previous = names.get(name)
        if previous is not None and previous != session_id and previous in agents:
            agents[previous]["name"] = None
        names[name] = session_id

    # -- markers ------------------------------------------------------------------------------

    def set_marker(self, directory: str, session_id: str) -> None:
        """Record that `session_id` is the session last registered for `directory`."""
        session_id = require_uuid(session_id)
        content = f"{session_id}\n".encode()
        path = self._path("markers", marker_name(directory))
        with self._locked():
            if durable.read_file(path) != content:
                durable.atomic_write(path, content)

    def record_start(self, session_id: str, directory: str, tool: str) -> Entry:
        """A session start's writes, the dir's marker and the entry {id, dir, tool}, under one lock hold."""
        with self._locked():
            self.set_marker(directory, session_id)
            return self.register(session_id, directory=directory, tool=tool)

    def marker(self, directory: str) -> str | None:
        """The session id the marker for `directory` names, if any."""
        raw = durable.read_file(self._path("markers", marker_name(directory)))
        if raw is None:
            return None
        return raw.decode("utf-8", "replace").strip() or None

    # -- mail ---------------------------------------------------------------------------------

    def enqueue(self, recipient: str, message: Message) -> None:
        """Append one message to the recipient's mailbox; synced to disk when this returns."""
        recipient = require_uuid(recipient, "recipient id")
        line = _to_json(message) + b"\n"
        with self._locked():
            checkpoint("send:before-append")
            durable.append_durably(self._mailbox(recipient), line)
            checkpoint("send:appended")

    def take(self, recipient: str) -> Delivery:
        """Claim the recipient's mail; confirm what was shown with `Delivery.ack`, then close.

        Only one taker per mailbox at a time (its own lock, so the store lock is not held while
        the caller writes to a possibly slow pipe). Mail left in flight by a dead taker comes
        first, flagged `redelivered`, then the newer pending mail.
        """
        recipient = require_uuid(recipient, "recipient id")
        self._prepare()
        inflight = self._inflight(recipient)
        take_lock = FileLock(inflight.removesuffix(".jsonl") + ".lock")
        if take_lock.path in _TAKING:
            return Delivery(self, recipient, [], [], None)
        take_lock.acquire()
        _TAKING.add(take_lock.path)
        try:
            checkpoint("take:locked")
            with self._locked(prepare=False):  # prepared above: the take lock lives in inflight/
                leftover = durable.read_file(inflight) or b""
                self._claim_pending(recipient, inflight, bool(leftover))
            checkpoint("take:claimed")
            good, messages, bad = _split_lines(durable.read_file(inflight) or b"")
            if bad:
                self._quarantine_lines(recipient, bad)
                durable.atomic_write(inflight, b"".join(line + b"\n" for line in good))
            for message in messages[: len(_split_lines(leftover)[0])]:
                message["redelivered"] = True
        except BaseException:
            take_lock.release()
            _TAKING.discard(take_lock.path)
            raise
        return Delivery(self, recipient, good, messages, take_lock)

    def _claim_pending(self, recipient: str, inflight: str, has_leftover: bool) -> None:
        pending = self._mailbox(recipient)
        if not has_leftover:
            try:
                os.rename(pending, inflight)
            except FileNotFoundError:
                return
            durable.fsync_dir(os.path.dirname(inflight))
            durable.fsync_dir(os.path.dirname(pending))
            return
        data = durable.read_file(pending)
        if data:
            durable.append_durably(inflight, data if data.endswith(b"\n") else data + b"\n")
        if data is not None:
            durable.remove(pending)

    def _finish_take(self, recipient: str, rest: list[bytes]) -> None:
        """Drop the shown mail from flight; unshown mail goes back in front of newer mail."""
        inflight = self._inflight(recipient)
        if rest:
            with self._locked():
                pending = self._mailbox(recipient)
                newer = durable.read_file(pending) or b""
                durable.atomic_write(pending, b"".join(line + b"\n" for line in rest) + newer)
        durable.remove(inflight)

    def _quarantine_lines(self, recipient: str, bad: list[bytes]) -> None:
        path = self._quarantine_path(f"{mailbox_name(recipient)}.unparsed")
        durable.atomic_write(path, b"".join(line + b"\n" for line in bad))
        self.warn(
            f"{len(bad)} unreadable line(s) in the mailbox of {recipient} were kept in {path}; "
            "the other messages were delivered"
        )

    def peek(self, recipient: str) -> list[Message]:
        """Every waiting message without taking any: in flight first, then pending, each marked."""
        recipient = require_uuid(recipient, "recipient id")
        if not os.path.isdir(self.home):
            return []
        with self._locked():
            inflight = durable.read_file(self._inflight(recipient)) or b""
            pending = durable.read_file(self._mailbox(recipient)) or b""
        shown: list[Message] = []
        for state, data in (("inflight", inflight), ("pending", pending)):
            _, messages, bad = _split_lines(data)
            for message in messages:
                message["state"] = state
            shown.extend(messages)
            if bad:
                self.warn(f"{len(bad)} unreadable line(s) in the {state} mail of {recipient} (left in place)")
        return shown

    def health(self) -> list[tuple[str, str]]:
        """Read-only findings about the store, as (status, text) pairs; status is "ok" or "problem".

        It changes nothing and only probes the store lock (0.2 s at most), so it is safe while
        sessions run.
        """
        if not os.path.isdir(self.home):
            return [("ok", f"no store yet at {self.home} (it is created by the first session start)")]
        findings = [("ok", f"store at {self.home}")]
        mode = os.stat(self.home).st_mode & 0o777
        if mode & 0o077:
            findings.append(("problem", f"the store is readable by others (mode {mode:o}); run: chmod 700 {self.home}"))
        registry = self._parse_registry()
        if registry is None:
            findings.append(("problem", "registry.json does not parse; the next change will move it to quarantine/"))
        else:
            findings.append(("ok", f"registry: {len(registry['agents'])} session(s), {len(registry['names'])} name(s)"))
        probe = FileLock(self._path(".lock"), deadline=0.2)
        try:
            with probe:
                findings.append(("ok", "the store lock is free"))
        except LockBusy:
            findings.append(("problem", "the store lock is held by another process right now (normal while one works)"))
        except RelayError as err:
            findings.append(("problem", f"the store lock: {err}"))
        for name in _listdir(self._path("inflight")):
            if name.endswith(".jsonl"):
                count = len(_split_lines(durable.read_file(self._path("inflight", name)) or b"")[0])
                findings.append(
                    ("problem", f"{count} message(s) for {name[:-6]} in flight: the next take delivers them again")
                )
        for name in _listdir(self._path("quarantine")):
            findings.append(
                ("problem", f"kept in quarantine, inspect and remove by hand: {self._path('quarantine', name)}")
            )
        return findings
