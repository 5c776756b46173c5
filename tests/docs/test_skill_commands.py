"""Every command the skill shows runs as written, and does what the skill says it does.

The commands are taken from the ```sh blocks of skills/session-relay/SKILL.md and run in order by
`sh`, with `${CLAUDE_SKILL_DIR}` set to the skill's directory (Claude Code substitutes it in plugin
skills; the skill tells Codex models to do the same), a private HOME holding the example project
dirs, a private store, and fake `claude`/`codex` executables that record how the doorbell ran them.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import realclients as rc
from conftest import queued_to

from relay.agents.claude import WAKE_OPTIONS as CLAUDE_WAKE_OPTIONS

SKILL_DIR = rc.REPO / "skills" / "session-relay"
SKILL = SKILL_DIR / "SKILL.md"
LAUNCHER_WORD = '"${CLAUDE_SKILL_DIR}/../../launcher"'
CLI_COMMANDS = {"discover", "list", "register", "send", "inbox", "peek", "wake"}

FAKE_CLIENT = """#!/bin/sh
# Records how the doorbell started it; prints a result line like the real CLI would.
{ printf '%s\\n' "$(basename "$0")" "$PWD"; for arg in "$@"; do printf '%s\\n' "$arg"; done; } > "$FAKE_LOG"
echo '{"fake": true}'
"""


def skill_text() -> str:
    return SKILL.read_text(encoding="utf-8")


def commands() -> list[str]:
    """The shell command lines of the skill, in order."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", skill_text(), flags=re.S):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(line.strip())
    return found


def frontmatter() -> dict[str, str]:
    text = skill_text()
    assert text.startswith("---\n")
    head = text[4 : text.index("\n---\n", 4)]
    fields = {}
    for line in head.splitlines():
        key, sep, value = line.partition(": ")
        assert sep and key.isidentifier(), f"frontmatter line is not `key: value`: {line!r}"
        fields[key] = value
    return fields


def test_frontmatter_names_the_skill_and_says_when_to_use_it() -> None:
    fields = frontmatter()
    assert fields["name"] == "session-relay" == SKILL_DIR.name
    assert 100 < len(fields["description"]) <= 1024
    assert "session" in fields["description"] and "Codex" in fields["description"]


def test_the_skill_covers_what_a_model_must_know() -> None:
    text = skill_text()
    lowered = text.lower()
    for tool in rc.BUS_TOOLS:
        assert f"`{tool}`" in text, f"the skill never names the {tool} tool"
    for must in (
        "sub-agent",  # when not to use the relay
        "freshest",  # how to pick
        "ask the user only when",  # ... and when to ask
        "untrusted",  # the mail rule
        "never as instructions",
        "never wake a running session",
        "live: true",
        "urgent",  # live delivery: what interrupts between tool calls
        "attention policy",
        "from its own project dir",  # the Claude doorbell's cwd
        "--dangerously-bypass-hook-trust",  # Codex hook trust
        "/hooks",
    ):
        assert must in lowered, f"the skill does not say {must!r}"


def test_every_command_uses_the_plugin_launcher_and_a_real_subcommand() -> None:
    lines = commands()
    assert len(lines) >= 8
    for line in lines:
        assert line.startswith(LAUNCHER_WORD + " "), line
        words = shlex.split(line[len(LAUNCHER_WORD) :])
        assert words[0] in CLI_COMMANDS, line
    used = {shlex.split(line[len(LAUNCHER_WORD) :])[0] for line in lines}
    assert {"discover", "register", "send", "wake", "inbox"} <= used


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    # The example project dirs the skill's commands name (`~/src/api`).
    for project in re.findall(r"~/src/([A-Za-z0-9_-]+)", skill_text()):
        (home / "src" / project).mkdir(parents=True, exist_ok=True)
    fakes = tmp_path / "fake-bin"
    fakes.mkdir()
    for name in ("claude", "codex"):
        (fakes / name).write_text(FAKE_CLIENT)
        (fakes / name).chmod(0o755)
    keep = {name: os.environ[name] for name in ("LANG", "TMPDIR") if name in os.environ}
    return {
        **keep,
        "PATH": f"{fakes}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "AGENT_RELAY_HOME": str(tmp_path / "store"),
        "RELAY_CLAUDE_PROJECTS": str(tmp_path / "claude-projects"),
        "RELAY_CODEX_SESSIONS": str(tmp_path / "codex-sessions"),
        "CLAUDE_SKILL_DIR": str(SKILL_DIR),
        "FAKE_LOG": str(tmp_path / "fake-client.log"),
    }


def run_line(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", line], env=env, cwd=str(cwd), capture_output=True, timeout=60, check=False)


def test_every_command_runs_as_written_and_does_what_it_says(sandbox: dict[str, str], tmp_path: Path) -> None:
    env = sandbox
    home = Path(env["HOME"])
    fake_log = Path(env["FAKE_LOG"])
    registered: dict[str, dict[str, str]] = {}
    queued: dict[str, list[str]] = {}
    for line in commands():
        words = shlex.split(line[len(LAUNCHER_WORD) :])
        done = run_line(line, env, home)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{err}"
        command = words[0]
        if command == "discover" and "--json" in words:
            assert json.loads(out) == []
        elif command == "register":
            name = words[1]
            opts = dict(zip(words[2::2], words[3::2], strict=False))
            registered[name] = opts
            listing = json.loads(run_line(f"{LAUNCHER_WORD} list --json", env, home).stdout)
            [entry] = [e for e in listing if e["name"] == name]
            assert entry["id"] == opts["--id"]
            assert entry["dir"] == str(home / opts["--dir"].removeprefix("~/"))
            assert entry["tool"] == opts.get("--tool", "claude")
        elif command == "send":
            target, message = words[1], " ".join(words[words.index("--") + 1 :])
            assert queued_to(out) == f"{target}"
            queued.setdefault(target, []).append(message)
        elif command == "peek":
            shown = json.loads(out)
            assert [m["body"] for m in shown["messages"]] == queued[words[1]]
        elif command == "inbox":
            taken = json.loads(out)
            assert [m["body"] for m in taken["messages"]] == queued.pop(words[1])
            after = json.loads(run_line(f"{LAUNCHER_WORD} peek {words[1]}", env, home).stdout)
            assert after["count"] == 0
        elif command == "wake":
            target = registered[words[1]]
            tool = target.get("--tool", "claude")
            target_dir = str(home / target["--dir"].removeprefix("~/"))
            if "--dry" in words:
                plan = json.loads(out)
                assert (plan["tool"], plan["cwd"]) == (tool, target_dir)
                assert not fake_log.exists(), "--dry started a client"
            else:
                program, cwd, *args = fake_log.read_text().splitlines()
                assert (program, cwd) == (tool, target_dir)
                head = (
                    ["exec", "resume", target["--id"], "--json", "--"]
                    if tool == "codex"
                    else ["-p", "--resume", target["--id"], "--output-format", "json", *CLAUDE_WAKE_OPTIONS, "--"]
                )
                assert args[:-1] == head and "session-relay mail" in args[-1]  # relay's own fixed prompt
                # the words after -- are mail for the woken session, never its prompt
                if "--" in words:
                    queued.setdefault(words[1], []).append(" ".join(words[words.index("--") + 1 :]))
                fake_log.unlink()
    assert registered, "the skill never shows how to register a discovered session"
