"""SessionStart with a large registry against one with a single session, and against plain Python.

    python3 benchmarks/bench_registry.py [LABEL=]BINARY ... [--sources [LABEL=]CHECKOUT ...]
        [--sessions 10000] [--rounds 100]

Each relay (a frozen binary, or `relay` run from a checkout's sources like the binary runs it: no
site, the entry point with argv ["relay", "hook"]) gets two throwaway stores: one with a single
registered session, one with `--sessions` more planted as an older relay's registry.json (so the
same planted store fits every version; a relay that keeps its registry elsewhere migrates it in the
warm-up run, outside the timing). In each store it runs, through `relay hook`:

- SessionStart of a new session (a fresh id and project dir every run, so each run registers one);
- SessionStart of a resume (the same registered session again: only its lastSeen changes);
- UserPromptSubmit with nothing to deliver (an event that needs no registry at all).

Each round runs every command once, in an order rotated by one place every round, so other load
hits all alike; the ratios are to the median of `python3 -I -S -c pass` of the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import uuid

from bench_startup import Command, parse_binary, real_python, report, run_rounds, sandbox_env

RESUMED = str(uuid.UUID(int=7))


def plant(store: str, sessions: int) -> None:
    """A registry.json of `sessions` entries with names, in the format every relay version reads."""
    os.makedirs(store, mode=0o700, exist_ok=True)
    agents, names = {}, {}
    for i in range(sessions):
        session_id = str(uuid.UUID(int=(1 << 100) + i))
        name = f"proj-{i}"
        agents[session_id] = {
            "id": session_id,
            "dir": f"/srv/work/proj-{i}",
            "name": name,
            "tool": "claude",
            "lastSeen": "2026-11-30T12:00:00.000Z",
        }
        names[name] = session_id
    path = os.path.join(store, "registry.json")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({"agents": agents, "names": names}, f, indent=2)


def write_event(path: str, session_id: str, cwd: str, event: str, source: str = "startup") -> None:
    body = {"session_id": session_id, "cwd": cwd, "hook_event_name": event, "source": source}
    if event == "UserPromptSubmit":
        body["prompt"] = "hello"
    with open(path, "w") as f:
        json.dump(body, f)


def new_session(root: str, stdin: str):
    """A `prepare` writing a SessionStart of a session never seen, in a project dir of its own."""
    count = [0]

    def prepare() -> None:
        count[0] += 1
        project = os.path.join(root, "projects", f"p{count[0]}")
        os.makedirs(project, exist_ok=True)
        write_event(stdin, str(uuid.uuid4()), project, "SessionStart")

    return prepare


def store_commands(label: str, argv: list[str], workdir: str, size: str, sessions: int) -> list[Command]:
    root = tempfile.mkdtemp(prefix=f"{size}-", dir=workdir)
    env = sandbox_env(root)
    if sessions:
        plant(env["AGENT_RELAY_HOME"], sessions)
    project = os.path.join(root, "resumed")
    os.makedirs(project)
    resume, prompt, fresh = (os.path.join(root, f"{n}.json") for n in ("resume", "prompt", "new"))
    write_event(resume, RESUMED, project, "SessionStart", "resume")
    write_event(prompt, RESUMED, project, "UserPromptSubmit")
    return [
        Command(f"{label} {size} SessionStart new", argv, env, fresh, new_session(root, fresh)),
        Command(f"{label} {size} SessionStart resume", argv, env, resume),
        Command(f"{label} {size} UserPromptSubmit", argv, env, prompt),
    ]


def source_argv(spec: str, python: str) -> tuple[str, list[str]]:
    """LABEL=CHECKOUT or CHECKOUT -> (label, argv running its relay's hook as the binary would)."""
    label, _, path = spec.rpartition("=")
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "relay", "__main__.py")):
        raise SystemExit(f"{path}: no relay/__main__.py there")
    entry = f"import sys; sys.argv[:] = ['relay', 'hook']; sys.path.insert(0, {path!r}); import relay.__main__"
    return label or os.path.basename(path), [python, "-I", "-S", "-c", entry]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="*", help="relay binaries (LABEL=PATH or PATH)")
    parser.add_argument("--sources", action="append", default=[], help="a checkout whose sources to run (LABEL=DIR)")
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions in the large store (default 10000)")
    parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds (default 100)")
    parser.add_argument("--python", help="the python3 of the denominator (default: the first on PATH that is no shim)")
    args = parser.parse_args()
    python = real_python(args.python)
    programs = [(label, [path, "hook"]) for label, path in map(parse_binary, args.binaries)]
    programs += [source_argv(spec, python) for spec in args.sources]
    if not programs:
        parser.error("give at least one binary or --sources checkout")
    with tempfile.TemporaryDirectory(prefix="relay-bench-registry-") as workdir:
        base = Command("python3 -I -S -c pass", [python, "-I", "-S", "-c", "pass"], sandbox_env(workdir))
        commands = [base]
        for label, argv in programs:
            for size, sessions in (("1", 0), (f"{args.sessions}", args.sessions)):
                commands += store_commands(label, argv, workdir, size, sessions)
        run_rounds(commands, args.rounds, workdir)  # the check run registers the resumed session
    load = os.getloadavg()
    print(f"{args.rounds} interleaved rounds, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f}")
    report(commands)


if __name__ == "__main__":
    main()
