"""Start-up cost of frozen relay binaries against plain Python, measured side by side in one run.

    python3 benchmarks/bench_startup.py OLD_BINARY [NEW_BINARY ...] [--rounds 200]
    python3 benchmarks/bench_startup.py --imports [--import-runs 20]

A binary may be given as LABEL=PATH. Each round runs every command once, in an order rotated by one
place every round, so that whatever else the machine does (other load, CPU clock) hits all commands
alike; the ratios are to the median of `python3 -I -S -c pass` from the same rounds. Per binary
(or launcher, e.g. `launcher=./launcher`): `--version`; `relay hook` with nothing to deliver for
SessionStart, UserPromptSubmit, PostToolUse and Stop events; the hook delivering 10 messages at a
UserPromptSubmit (queued in the store's format before each run, outside the timing); and one MCP
session, `relay bus` answering initialize, tools/list and a whoami call from a file. Each binary
has its own throwaway store (a warm-up run before the timed rounds creates it). Peak RSS is the
largest ru_maxrss of a command's runs.

--imports: what `relay hook` imports when run from this checkout's sources (`python3 -X importtime`),
beyond what `python3 -I -S -c pass` imports itself, with the median self and cumulative cost of each
module over several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid

from _common import MCP_FRAMES, REPO, SCRUBBED, mailbox_line

# Imports the short-lived paths must not pay for (the start-up import budget).
HEAVY = ("inspect", "typing", "re", "json", "orjson", "pathlib", "dataclasses")
EVENTS = ("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop")


class Command:
    """One program line to time: argv, what it reads on stdin, and its samples."""

    def __init__(
        self,
        label: str,
        argv: list[str],
        env: dict[str, str],
        stdin: str = os.devnull,
        prepare=None,
        talks: bool = False,
    ) -> None:
        self.label = label
        self.argv = argv
        self.env = env
        self.stdin = stdin
        self.prepare = prepare  # run before each run, outside the timing (e.g. queue the mail it takes)
        self.ms: list[float] = []
        self.rss_kib: list[int] = []
        self.talks = talks  # the bus logs its session to stderr: not an error

    def check(self) -> None:
        """Run once outside the timing: it must exit 0 with a quiet stderr (else an error path is timed)."""
        if self.prepare:
            self.prepare()
        with open(self.stdin, "rb") as f:
            result = subprocess.run(self.argv, stdin=f, capture_output=True, env=self.env, timeout=60, check=False)
        if result.returncode != 0 or (result.stderr and not self.talks):
            raise SystemExit(f"{self.label}: exit {result.returncode}: {result.stderr.decode(errors='replace')[:300]}")

    def run(self) -> None:
        """Time one run: posix_spawn + waitpid, nothing else in between (no shell, no pipes to drain)."""
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, self.stdin, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        if self.prepare:
            self.prepare()
        start = time.perf_counter()
        pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        self.ms.append((time.perf_counter() - start) * 1000)
        self.rss_kib.append(usage.ru_maxrss)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{self.label}: exit status {os.waitstatus_to_exitcode(status)} during the rounds")


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def sandbox_env(root: str) -> dict[str, str]:
    """This environment without relay's own variables, with HOME and the store inside `root`."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("PYTHON")}
    os.makedirs(os.path.join(root, "home"), exist_ok=True)
    env.update(
        {
            "HOME": os.path.join(root, "home"),
            "AGENT_RELAY_HOME": os.path.join(root, "store"),
            "RELAY_CLAUDE_PROJECTS": os.path.join(root, "claude-projects"),
            "RELAY_CODEX_SESSIONS": os.path.join(root, "codex-sessions"),
        }
    )
    return env


def hook_event(root: str, event: str) -> str:
    """A file holding the hook's stdin: one session, `event`, nothing queued for it."""
    body = {"session_id": str(uuid.UUID(int=1)), "cwd": root, "hook_event_name": event}
    if event == "UserPromptSubmit":
        body["prompt"] = "hello"
    path = os.path.join(root, f"{event}.json")
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def parse_binary(spec: str) -> tuple[str, str]:
    """LABEL=PATH or PATH -> (label, absolute path)."""
    label, _, path = spec.rpartition("=")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path}: not an executable file")
    return label or os.path.basename(path), path


def queue_ten(env: dict[str, str]):
    """A `prepare` that puts 10 messages (in the store's own format) in the benchmark session's mailbox."""
    mailbox = os.path.join(env["AGENT_RELAY_HOME"], "mailbox", f"{uuid.UUID(int=1)}.jsonl")
    lines = "".join(
        mailbox_line(
            str(uuid.uuid4()),
            "2026-11-30T12:00:00.000Z",
            str(uuid.UUID(int=1)),
            f"message {i}: the build of branch feature-{i} finished, 3 tests failed",
            "cli",
        )
        for i in range(10)
    )

    def prepare() -> None:
        with open(mailbox, "w") as f:
            f.write(lines)

    return prepare


def mcp_session(root: str) -> str:
    """A file holding one MCP session's client side: initialize, initialized, tools/list, whoami."""
    path = os.path.join(root, "mcp.jsonl")
    with open(path, "w") as f:
        f.write("".join(json.dumps(frame) + "\n" for frame in MCP_FRAMES))
    return path


def binary_commands(label: str, path: str, workdir: str) -> list[Command]:
    root = tempfile.mkdtemp(prefix="sandbox-", dir=workdir)
    env = sandbox_env(root)
    commands = [Command(f"{label} --version", [path, "--version"], env)]
    for event in EVENTS:
        commands.append(Command(f"{label} hook {event}", [path, "hook"], env, hook_event(root, event)))
    prompt = hook_event(root, "UserPromptSubmit")
    commands.append(Command(f"{label} hook with 10", [path, "hook"], env, prompt, queue_ten(env)))
    commands.append(Command(f"{label} mcp session", [path, "bus"], env, mcp_session(root), talks=True))
    return commands


def real_python(given: str | None) -> str:
    """The denominator's interpreter: --python, else the first python3 on PATH that is a program
    and not a script (a pyenv or asdf shim is a shell script that runs another process first,
    which would make every ratio look better than it is)."""
    candidates = [given] if given else [os.path.join(d or ".", "python3") for d in os.get_exec_path()]
    for path in candidates:
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            continue
        with open(path, "rb") as f:
            if f.read(4) == b"\x7fELF":
                return os.path.realpath(path)
        if given:
            raise SystemExit(f"{given}: not an ELF program (a shim script?); give the interpreter itself")
    raise SystemExit("no python3 program on PATH (it is the denominator); give one with --python")


def measure(specs: list[str], rounds: int, python: str) -> None:
    binaries = [parse_binary(spec) for spec in specs]
    with tempfile.TemporaryDirectory(prefix="relay-bench-startup-") as workdir:
        base = Command("python3 -I -S -c pass", [python, "-I", "-S", "-c", "pass"], sandbox_env(workdir))
        commands = [base]
        for label, path in binaries:
            commands += binary_commands(label, path, workdir)
        run_rounds(commands, rounds, workdir)
    load = os.getloadavg()
    print(f"{rounds} interleaved rounds, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  denominator: {python}")
    for label, path in binaries:
        print(f"  {label}: {path}, {os.path.getsize(path) / (1 << 20):.1f} MiB")
    for name in sorted(os.listdir(REPO / "bin")) if (REPO / "bin").is_dir() else []:
        print(f"  committed bin/{name}: {os.path.getsize(REPO / 'bin' / name) / (1 << 20):.1f} MiB (target <= 12 MB)")
    report(commands)


def run_rounds(commands: list[Command], rounds: int, workdir: str) -> None:
    """Check every command once, then time `rounds` rounds, each in an order rotated by one place."""
    for command in commands:
        command.check()
    here = os.getcwd()
    os.chdir(workdir)
    try:
        for r in range(rounds):
            shift = r % len(commands)
            for command in commands[shift:] + commands[:shift]:
                command.run()
    finally:
        os.chdir(here)


def report(commands: list[Command]) -> None:
    """One line per command: median, p90, the ratio to the first command's median, peak RSS."""
    denominator = statistics.median(commands[0].ms)
    width = max(len(c.label) for c in commands)
    print(f"{'command':<{width}}  {'median ms':>9}  {'p90 ms':>7}  {'x python':>8}  {'peak RSS MiB':>12}")
    for c in commands:
        median = statistics.median(c.ms)
        rss = max(c.rss_kib) / 1024
        print(f"{c.label:<{width}}  {median:9.2f}  {p90(c.ms):7.2f}  {median / denominator:8.2f}  {rss:12.1f}")


def importtime(argv: list[str], env: dict[str, str], stdin: str) -> list[tuple[str, int, int, int]]:
    """(module, depth, self us, cumulative us) in import order, from one `-X importtime` run."""
    with open(stdin, "rb") as f:
        result = subprocess.run(argv, stdin=f, capture_output=True, env=env, timeout=60, check=False)
    rows = []
    for line in result.stderr.decode().splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), depth, int(self_us), int(cumulative)))
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}: exit {result.returncode}: {result.stderr.decode()[-300:]}")
    return rows


def imports(runs: int, python: str) -> None:
    flags = [python, "-I", "-S", "-X", "importtime", "-c"]
    # Like the binary: the relay entry point with argv ["relay", "hook"], no runpy, no site.
    entry = f"import sys; sys.argv[:] = ['relay', 'hook']; sys.path.insert(0, {str(REPO)!r}); import relay.__main__"
    with tempfile.TemporaryDirectory(prefix="relay-bench-imports-") as workdir:
        env = sandbox_env(workdir)
        baseline = {name for name, *_ in importtime([*flags, "pass"], env, os.devnull)}
        for event in EVENTS:
            stdin = hook_event(workdir, event)
            importtime([*flags, entry], env, stdin)  # the first start creates the store: not counted
            samples = [importtime([*flags, entry], env, stdin) for _ in range(runs)]
            order = [(name, depth) for name, depth, _, _ in samples[-1] if name not in baseline]
            costs: dict[str, tuple[list[int], list[int]]] = {name: ([], []) for name, _ in order}
            for rows in samples:
                for name, _, self_us, cumulative in rows:
                    if name in costs:
                        costs[name][0].append(self_us)
                        costs[name][1].append(cumulative)
            total = sum(statistics.median(s) for s, _ in costs.values())
            print(f"relay hook ({event}) from the sources: {len(order)} modules beyond `python3 -I -S -c pass`,")
            print(f"{total / 1000:.2f} ms of import time in all (median of {runs} runs, microseconds below)")
            print(f"{'self':>7} {'cumul.':>7}  module (in -X importtime's order: a module comes after what it imports,")
            print(f"{'':>7} {'':>7}  which is indented under it; relay.__main__ never finishes, it calls os._exit)")
            for name, depth in order:
                self_us, cumulative = (statistics.median(v) for v in costs[name])
                print(f"{self_us:7.0f} {cumulative:7.0f}  {'  ' * depth}{name}")
            heavy = ", ".join(m for m in HEAVY if m in costs) or "none"
            print(f"of the start-up import budget ({', '.join(HEAVY)}): {heavy}")
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="*", help="relay binaries (LABEL=PATH or PATH) to compare")
    parser.add_argument("--rounds", type=int, default=200, help="interleaved rounds (default 200)")
    parser.add_argument("--imports", action="store_true", help="list what `relay hook` imports from the sources")
    parser.add_argument("--python", help="the python3 of the denominator (default: the first on PATH that is no shim)")
    parser.add_argument("--import-runs", type=int, default=20, help="runs per event for --imports (default 20)")
    args = parser.parse_args()
    if not args.binaries and not args.imports:
        parser.error("give at least one binary, or --imports")
    if args.imports:
        imports(args.import_runs, real_python(args.python))
    if args.binaries:
        measure(args.binaries, args.rounds, real_python(args.python))


if __name__ == "__main__":
    main()
