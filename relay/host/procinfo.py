"""Read-only facts about running processes: parent, start time, name, cwd and open files.

The agents' adapters (relay.agents) use them to tell which of their CLI's processes run and which
one started the MCP server. Linux answers from /proc; macOS (no /proc) from `ps` and `lsof`, which
ship with the system. Every function answers None or an empty list when it cannot tell (the process
is gone, belongs to another user, or the tools are missing); none of them raises.
"""

import os
import sys

from relay.util.values import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_PROC = "/proc"  # plain strings: pathlib costs every start its import
# Ancestry is short in practice (codex -> launcher/stub -> relay); the cap only stops loops.
MAX_DEPTH = 32
# `ps`/`lsof` on a busy Mac answer in tens of milliseconds; never let them hang a tool call.
_TOOL_TIMEOUT = 5.0


class ProcInfo(Record):
    """One process. `start` is an opaque token that differs when a pid is reused."""

    __slots__ = ("name", "pid", "ppid", "start")
    pid: int
    ppid: int
    start: str
    name: str

    def __init__(self, pid: int, ppid: int, start: str, name: str) -> None:
        self._fields(pid=pid, ppid=ppid, start=start, name=name)


def _has_proc() -> bool:
    return os.path.exists(f"{_PROC}/self/stat")


def _run(argv: list[str]) -> str | None:
    """stdout of a short read-only command in the C locale, or None if it failed."""
    import subprocess  # macOS only (no /proc): Linux never pays for importing it

    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TOOL_TIMEOUT,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def _proc_stat(pid: int) -> tuple[str, list[str]] | None:
    """(comm, the fields after it) of /proc/<pid>/stat, or None when it cannot be read."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None
    # Field 2 is "(comm)" and comm may itself contain spaces or parentheses: split at the last ')'.
    open_paren, close_paren = raw.find("("), raw.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        return None
    return raw[open_paren + 1 : close_paren], raw[close_paren + 2 :].split()


def _linux_info(pid: int) -> ProcInfo | None:
    stat = _proc_stat(pid)
    if stat is None:
        return None
    name, rest = stat
    try:
        ppid, start = int(rest[1]), rest[19]
    except (IndexError, ValueError):
        return None
    # comm is cut at 15 bytes; the executable's base name is the full one when readable.
    try:
        name = os.path.basename(os.readlink(f"{_PROC}/{pid}/exe")) or name
    except OSError:
        pass  # another user's process: keep the name from stat
    return ProcInfo(pid=pid, ppid=ppid, start=start, name=name.removesuffix(" (deleted)"))


def _ps_info(pid: int) -> ProcInfo | None:
    # lstart is always 24 characters ("Mon Nov 23 23:33:16 2026") in the C locale.
    out = _run(["ps", "-o", "ppid=", "-o", "lstart=", "-o", "comm=", "-p", str(pid)])
    if not out or not out.strip():
        return None
    line = out.strip().splitlines()[0]
    head, _, rest = line.strip().partition(" ")
    try:
        ppid = int(head)
    except ValueError:
        return None
    rest = rest.lstrip()
    start, command = rest[:24], rest[24:].strip()
    return ProcInfo(pid=pid, ppid=ppid, start=start, name=os.path.basename(command))


def process_info(pid: int) -> ProcInfo | None:
    """Parent, start token and executable name of `pid`, or None if it cannot be read."""
    if pid <= 0:
        return None
    return _linux_info(pid) if _has_proc() else _ps_info(pid)


def is_zombie(pid: int) -> bool:
    """`pid` has ended and waits to be reaped (state Z): it still has a pid and a start time, but
    runs nothing. Linux only; elsewhere False."""
    stat = _proc_stat(pid)
    return stat is not None and stat[1][:1] == ["Z"]


def same_process(pid: int, start: str) -> bool:
    """Is `pid` alive and the process that started at `start` (a reused pid is another process)?"""
    now = process_info(pid)
    return now is not None and now.start == start


def holder_runs(pid: int, start: str | None = None) -> bool:
    """Does the process a lock or claim names still run? The one liveness rule for every holder
    relay notes (a resume lock, a doorbell server, a Redis taker): the same process when `start`
    is known (a reused pid is another process), and never a zombie, since an orphan under an init
    that does not reap (as in some containers) would otherwise hold on for good."""
    alive = same_process(pid, start) if start is not None else process_info(pid) is not None
    return alive and not is_zombie(pid)


def title(pid: int) -> str | None:
    """The process's own name for itself (Linux `comm`, which a program may set), or None."""
    try:
        with open(f"{_PROC}/{pid}/comm", "rb") as handle:
            return handle.read(256).decode("utf-8", "replace").strip()
    except OSError:
        return None


def command_line(pid: int) -> list[str]:
    """argv of `pid` on Linux (empty elsewhere or when unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read(1 << 20)
    except OSError:
        return []
    return [word.decode("utf-8", "surrogateescape") for word in raw.split(b"\0") if word]


def ancestors(pid: int | None = None, max_depth: int = MAX_DEPTH) -> list[ProcInfo]:
    """The parent of `pid` (default: this process), its parent, ... up to but excluding pid 1."""
    current = os.getpid() if pid is None else pid
    me = process_info(current)
    next_pid = me.ppid if me else (os.getppid() if pid is None else 0)
    chain: list[ProcInfo] = []
    seen = {current}
    while next_pid > 1 and next_pid not in seen and len(chain) < max_depth:
        seen.add(next_pid)
        info = process_info(next_pid)
        if info is None:
            break
        chain.append(info)
        next_pid = info.ppid
    return chain


def matching_pids(matches: "Callable[[ProcInfo], bool]") -> list[int]:
    """Pids of the running processes for which `matches` (which sees pid and name only) is true."""
    if os.path.isdir(f"{_PROC}/self"):
        found = []
        for name in os.listdir(_PROC):
            if name.isdigit():
                info = process_info(int(name))
                if info is not None and matches(info):
                    found.append(info.pid)
        return found
    out = _run(["ps", "-A", "-o", "pid=", "-o", "comm="])
    pids = []
    for line in (out or "").splitlines():
        pid, _, command = line.strip().partition(" ")
        name = os.path.basename(command.strip())
        if pid.isdigit() and matches(ProcInfo(pid=int(pid), ppid=0, start="", name=name)):
            pids.append(int(pid))
    return pids


def nearest_ancestor(matches: "Callable[[ProcInfo], bool]", pid: int | None = None) -> ProcInfo | None:
    """The nearest ancestor of `pid` (default: this process) for which `matches` is true."""
    for info in ancestors(pid):
        if matches(info):
            return info
    return None


def executable(pid: int) -> str | None:
    """The path of the program `pid` runs (Linux only), or None when it cannot be read or that file
    is gone (replaced by an update since the process started)."""
    if not _has_proc():
        return None
    try:
        path = os.readlink(f"{_PROC}/{pid}/exe")
    except OSError:
        return None
    return path if path.startswith("/") and os.path.isfile(path) else None


def process_cwd(pid: int) -> str | None:
    """The current directory of `pid`, or None when it cannot be read."""
    if _has_proc():
        try:
            return os.readlink(f"{_PROC}/{pid}/cwd")
        except OSError:
            return None
    out = _run(["lsof", "-a", "-n", "-P", "-p", str(pid), "-d", "cwd", "-Fn"])
    for line in (out or "").splitlines():
        if line.startswith("n/"):
            return line[1:]
    return None


def open_files(pid: int) -> list[str]:
    """Paths of the regular files `pid` holds open (best effort; empty when unreadable)."""
    if _has_proc():
        fd_dir = f"{_PROC}/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return []
        paths = []
        for name in names:
            try:
                target = os.readlink(f"{fd_dir}/{name}")
            except OSError:
                continue
            if target.startswith("/"):
                paths.append(target.removesuffix(" (deleted)"))
        return paths
    if sys.platform == "win32":
        return []
    out = _run(["lsof", "-n", "-P", "-p", str(pid), "-Fn"])
    return [line[1:] for line in (out or "").splitlines() if line.startswith("n/")]


def environ_value(pid: int, name: str) -> str | None:
    """The value `name` had in the environment `pid` started with (Linux only: /proc/<pid>/environ),
    or None when it is not set there or cannot be read. A process can change its own environment
    but not this record of it (the loop guard relies on that)."""
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            raw = handle.read(1 << 20)
    except OSError:
        return None
    key = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode("utf-8", "surrogateescape")
    return None
