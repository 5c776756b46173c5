"""Start-up cost of the frozen binary, measured against baselines in the same run.

    python benchmarks/bench_binary.py [--runs N]

Prints, for this machine:
- warm start of `./launcher hook` (empty inbox, a fresh session id each run, private store) against
  `python3 -S -c pass` and `node -e 0`: median, p90 and min wall time;
- first run (unpacking a never-seen payload into an empty cache dir): median;
- peak RSS of a warm hook run (the stub execs, so it is the one process's high-water mark);
- the size of every file in bin/.
Targets (README): hook <= 20 ms median, first run <= 150 ms, <= 10 MB per file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from binary_support import BIN, fresh_copy, host_binary  # noqa: E402


def timed(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> float:
    """Wall seconds of one run; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(stdin)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{argv} failed ({proc.returncode}): {err.decode()}{out.decode()}")
    return elapsed


def peak_rss(argv: list[str], env: dict[str, str], stdin: bytes) -> int:
    """Peak RSS (KiB) of one run, from wait4() on exactly that process (RUSAGE_CHILDREN would
    mix in every earlier child)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(r, 0)
        os.close(w)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.execve(argv[0], argv, env)
    os.close(r)
    os.write(w, stdin)
    os.close(w)
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, argv
    return usage.ru_maxrss


def interleaved(cases: dict[str, tuple[list[str], Callable[[], bytes]]], env: dict[str, str], runs: int):
    """Wall times per case, the cases taking turns run by run so that background load on a shared
    machine hits all of them alike. One untimed run each first (page cache; unpacking)."""
    for argv, stdin in cases.values():
        timed(argv, env, stdin())
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (argv, stdin) in cases.items():
            samples[name].append(timed(argv, env, stdin()))
    return samples


def show(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    print(f"  {name:<28} median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f}   min {ms[0]:6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    runs = ap.parse_args().runs
    binary = host_binary_or_exit()

    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        tmpdir = Path(tmp)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmpdir),
            "AGENT_RELAY_HOME": str(tmpdir / "store"),
            "XDG_CACHE_HOME": str(tmpdir / "cache"),
        }

        def event() -> bytes:
            return f'{{"session_id": "{uuid.uuid4()}", "cwd": "{tmpdir}"}}'.encode()

        def nothing() -> bytes:
            return b""

        cases = {
            "launcher hook": ([str(REPO / "launcher"), "hook"], event),
            "binary hook (no launcher)": ([str(binary), "hook"], event),
            "python3 -S -c pass": (["python3", "-S", "-c", "pass"], nothing),
        }
        if shutil.which("node"):
            cases["node -e 0"] = (["node", "-e", "0"], nothing)
        print(f"warm start, {runs} runs each, interleaved ({os.cpu_count()} CPUs):")
        for name, samples in interleaved(cases, env, runs).items():
            show(name, samples)
        if "node -e 0" not in cases:
            print("  node -e 0                    (node not installed)")

        first = []
        for i in range(max(5, runs // 8)):
            copy = fresh_copy(binary, tmpdir / f"fresh-{i}")
            cache = {**env, "XDG_CACHE_HOME": str(tmpdir / f"cache-{i}")}
            first.append(timed([str(copy), "--version"], cache))
        print("first run (unpack into an empty cache):")
        show("binary --version", first)

        rss = peak_rss([str(binary), "hook"], env, event())
        print(f"peak RSS of a warm hook run: {rss / 1024:.1f} MiB")

    print("file sizes:")
    for path in sorted(BIN.iterdir()):
        print(f"  {path.name:<38} {path.stat().st_size / 1e6:5.2f} MB")


def host_binary_or_exit() -> Path:
    try:
        return host_binary()
    except BaseException as skip:  # pytest.skip raises an exception outside pytest too
        sys.exit(f"bench_binary: {skip}")


if __name__ == "__main__":
    main()
