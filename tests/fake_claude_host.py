"""Stands in for Claude Code running asyncRewake hooks: started with argv[0] `claude` (and, after
the spec path, whatever Claude argv a test wants the watcher to see, e.g. `-p PROMPT`), it runs
each hook command the spec names as Claude does, `/bin/sh -c COMMAND` in a new session with the
event JSON on stdin, and appends one JSON line {rc, stderr, seconds} per finished hook to the
spec's result file. It exits when every hook has finished (so a test can see it wait for them)."""

import json
import subprocess
import sys
import threading
import time


def run_hook(command: str, event: dict, results: str, lock: threading.Lock) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = proc.communicate(json.dumps(event).encode() + b"\n")
    line = {
        "rc": proc.returncode,
        "stdout": out.decode(),
        "stderr": err.decode(),
        "seconds": time.monotonic() - started,
    }
    with lock, open(results, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    lock = threading.Lock()
    threads = [
        threading.Thread(target=run_hook, args=(spec["command"], spec["event"], spec["results"], lock))
        for _ in range(spec.get("count", 1))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


main()
