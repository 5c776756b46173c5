"""`relay doctor` reports what needs a human: loose permissions, a corrupt registry, a held lock,
mail left in flight by a dead taker, and quarantined files (FAIL lines, exit 1), and whether the
installation works: Codex hook trust, a woken Claude's tool permission, the installed copies, the
binary's freshness. Every line starts PASS, WARN or FAIL; WARN alone exits 0."""

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, new_id, relay_command


def _start(run_relay, session_id):
    event = f'{{"session_id": "{session_id}", "cwd": "/tmp"}}'
    assert run_relay("hook", input=event).returncode == 0


def test_a_fresh_store_is_healthy(run_relay, store_home):
    result = run_relay("doctor")
    assert result.returncode == 0
    assert b"PASS  store: none yet at" in result.stdout
    _start(run_relay, new_id())
    result = run_relay("doctor")
    assert result.returncode == 0, result.stdout
    assert b"PASS  registry: 1 session(s)" in result.stdout
    assert b"FAIL" not in result.stdout


def test_mail_left_in_flight_by_a_killed_taker_is_reported(run_relay, store_home):
    session = new_id()
    _start(run_relay, session)
    assert run_relay("send", "--id", session, "--", "hello").returncode == 0
    killed = run_relay("inbox", session, extra_env={"RELAY_TEST_KILL_AT": "take:claimed"})
    assert killed.returncode == -9
    result = run_relay("doctor")
    assert result.returncode == 1
    assert f"1 message(s) for {session} in flight".encode() in result.stdout


def test_corrupt_registry_loose_mode_and_quarantine_are_reported(run_relay, store_home):
    _start(run_relay, new_id())
    (store_home / "registry.json").write_text("{not json")
    os.chmod(store_home, 0o755)
    result = run_relay("doctor")
    assert result.returncode == 1
    assert b"registry.json does not parse" in result.stdout
    assert b"readable by others (mode 755)" in result.stdout
    # reporting moved nothing aside: the corrupt registry is where it was
    assert (store_home / "registry.json").read_text() == "{not json"
    assert not (store_home / "quarantine").exists()
    # the next change quarantines the registry; doctor then points at the kept copy
    assert run_relay("register", "x", "--id", new_id()).returncode == 0
    result = run_relay("doctor")
    assert b"kept in quarantine" in result.stdout and b"registry.json.corrupt-" in result.stdout


def test_a_held_lock_is_reported(run_relay, store_home):
    _start(run_relay, new_id())
    with open(store_home / ".lock", "r+b") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_relay("doctor")
    assert result.returncode == 1
    assert b"lock is held by another process" in result.stdout


def test_every_planted_or_broken_file_is_reported_not_just_the_first(run_relay, store_home, tmp_path):
    """Red team: doctor stopped at the first bad file or missed it. Plant one of each kind at once."""
    sid = new_id()
    _start(run_relay, sid)
    assert run_relay("send", "--id", sid, "--", "hello").returncode == 0
    assert run_relay("inbox", sid, extra_env={"RELAY_TEST_KILL_AT": "take:claimed"}).returncode == -9
    outside = tmp_path / "outside"
    outside.write_text("x")
    planted = {
        "symlink": store_home / "markers" / "-planted-link",
        "fifo": store_home / "inflight" / f"{new_id()}.jsonl",
        "hardlink": store_home / "mailbox" / f"{new_id()}.jsonl",
        "loose": store_home / "mailbox" / f"{new_id()}.jsonl",
        "garbage-marker": store_home / "markers" / "-garbage",
        "garbage-mail": store_home / "mailbox" / f"{new_id()}.jsonl",
        "foreign": store_home / "mailbox" / f"{new_id()}.jsonl",
    }
    planted["symlink"].symlink_to(outside)
    os.mkfifo(planted["fifo"])
    os.link(outside, planted["hardlink"])
    planted["loose"].write_text("")
    os.chmod(planted["loose"], 0o644)
    planted["garbage-marker"].write_text("not an id\n")
    planted["garbage-mail"].write_text('{"id": "ok"}\nnot json\n')
    planted["foreign"].write_text("")
    if os.geteuid() == 0:
        os.chown(planted["foreign"], 12345, 12345)
    (store_home / "quarantine").mkdir()
    (store_home / "quarantine" / "kept").write_text("x")
    result = run_relay("doctor")
    assert result.returncode == 1
    out = result.stdout.decode()
    problems = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    expect = {
        "symlink": "is a symlink",
        "fifo": "is a FIFO",
        "hardlink": "2 hard links",
        "loose": "readable by others (mode 644)",
        "garbage-marker": "marker does not parse",
        "garbage-mail": "1 line(s) does not parse",
    }
    if os.geteuid() == 0:
        expect["foreign"] = "belongs to uid 12345"
    for key, words in expect.items():
        assert any(str(planted[key]) in line and words in line for line in problems), (key, out)
    assert any(f"1 message(s) for {sid} in flight" in line for line in problems), out
    assert any("kept in quarantine" in line for line in problems), out
    # reporting changed nothing
    assert os.stat(planted["loose"]).st_mode & 0o777 == 0o644
    assert planted["symlink"].is_symlink() and planted["fifo"].exists()


def test_doctor_never_blocks_on_a_fifo(run_relay, store_home):
    sid = new_id()
    _start(run_relay, sid)
    (store_home / "agents" / f"{sid}.json").unlink()
    os.mkfifo(store_home / "agents" / f"{sid}.json")
    os.mkfifo(store_home / "registry.json")  # as an older relay's registry, not migrated yet
    result = run_relay("doctor", timeout=20)
    assert result.returncode == 1
    assert f"{sid}.json is a FIFO".encode() in result.stdout
    assert b"registry.json is a FIFO" in result.stdout


def test_a_shared_home_is_reported_as_refused_and_left_alone(run_relay, store_home):
    store_home.mkdir()
    os.chmod(store_home, 0o1777)
    result = run_relay("doctor")
    assert result.returncode == 1
    assert b"writable by group or others (mode 1777)" in result.stdout
    assert os.stat(store_home).st_mode & 0o7777 == 0o1777


# -- the installation ------------------------------------------------------------------------------

PLUGIN_ID = "session-relay@session-relay"
CODEX_EVENTS = ("session_start", "user_prompt_submit", "post_tool_use", "stop", "session_end")
# What a plugin copy runs from (relay/agents/install_files.py compares these between copies).
RUNNING = ("relay", "bin", "hooks", "skills", ".claude-plugin", ".codex-plugin", "launcher", "pyproject.toml")
RUNNING += (".codex-mcp.json", ".mcp.json", "qwen-extension.json")


def lines(result, prefix: str) -> list[str]:
    """stdout lines that start with `prefix` (e.g. "FAIL  Codex hooks")."""
    return [line for line in result.stdout.decode().splitlines() if line.startswith(prefix)]


def fix_of(line: str) -> str:
    assert "; fix: " in line, line
    return line.rsplit("; fix: ", 1)[1]


def plugin_copy(dest: Path) -> Path:
    """A copy of what this checkout's plugin runs from, as a CLI's install would hold it."""
    dest.mkdir(parents=True)
    for name in RUNNING:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture
def codex_home(tmp_path: Path) -> Path:
    return tmp_path / "codex-home"


def install_in_codex(codex_home: Path, trusted: tuple[str, ...] = (), source: Path = REPO) -> Path:
    """What `codex plugin marketplace add` + `codex plugin add` leave (as codex 0.169 writes them), with
    the hook trust of the events in `trusted` as its TUI records it; the cached copy."""
    copy = plugin_copy(codex_home / "plugins" / "cache" / "session-relay" / "session-relay" / "0.2.0")
    config = [
        f'[marketplaces.session-relay]\nsource_type = "local"\nsource = "{source}"\n',
        f'[plugins."{PLUGIN_ID}"]\nenabled = true\n',
        "[hooks.state]\n",
    ]
    for event in trusted:
        config.append(
            f'[hooks.state."{PLUGIN_ID}:hooks/codex-hooks.json:{event}:0:0"]\n'
            f'trusted_hash = "sha256:{"ab" * 32}"\ntrusted_content_hash = "sha256:{"cd" * 32}"\n'
        )
    (codex_home / "config.toml").write_text("\n".join(config))
    return copy


def test_codex_not_installed_needs_no_trust(run_relay, codex_home):
    result = run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)})
    assert lines(result, "PASS  Codex hooks: session-relay is not installed in Codex"), result.stdout
    assert lines(result, "PASS  Codex: session-relay is not installed"), result.stdout


def test_untrusted_codex_hooks_fail_with_the_way_to_trust_them(run_relay, codex_home):
    install_in_codex(codex_home)
    result = run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)})
    assert result.returncode == 1, result.stdout
    [line] = lines(result, "FAIL  Codex hooks: none of session-relay's hooks are trusted")
    assert str(codex_home / "config.toml") in line and "/hooks" in line and "Trust all and continue" in line
    assert fix_of(line) == "codex"


def test_partly_trusted_codex_hooks_name_the_untrusted_events(run_relay, codex_home):
    install_in_codex(codex_home, trusted=CODEX_EVENTS[:3])
    result = run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)})
    assert result.returncode == 1
    [line] = lines(result, "FAIL  Codex hooks: 3 of 5 of session-relay's hooks are trusted")
    assert "(not: stop, session_end)" in line


def test_trusted_codex_hooks_pass(run_relay, codex_home):
    install_in_codex(codex_home, trusted=CODEX_EVENTS)
    result = run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)})
    assert lines(result, "PASS  Codex hooks: all 5 of session-relay's hooks are trusted"), result.stdout
    assert not lines(result, "FAIL")


def test_an_unparseable_codex_config_is_a_warning(run_relay, codex_home):
    codex_home.mkdir()
    (codex_home / "config.toml").write_text("[plugins\nnot toml")
    result = run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)})
    assert result.returncode == 0
    [line] = lines(result, "WARN  Codex hooks:")
    assert "does not parse" in line


def test_a_woken_claude_is_allowed_the_relays_tools(run_relay):
    result = run_relay("doctor")
    [line] = lines(result, "PASS  woken Claude:")
    assert "--allowedTools mcp__plugin_session-relay_bus" in line


@pytest.mark.parametrize("rule", ["mcp__plugin_session-relay_bus__inbox", "mcp__plugin_session-relay_bus", "mcp__*"])
def test_a_user_deny_rule_for_the_bus_tools_is_a_warning_whose_fix_works(run_relay, env, tmp_path, rule):
    claude = tmp_path / "claude-config"
    claude.mkdir()
    settings = claude / "settings.json"
    settings.write_text(json.dumps({"permissions": {"deny": ["Bash(rm:*)", rule]}, "model": "x"}))
    extra = {"CLAUDE_CONFIG_DIR": str(claude)}
    result = run_relay("doctor", extra_env=extra)
    assert result.returncode == 0
    [line] = lines(result, "WARN  woken Claude:")
    assert str(settings) in line and repr(rule) in line
    fix = subprocess.run(fix_of(line), shell=True, env=env, capture_output=True, check=False)
    assert fix.returncode == 0, fix.stderr
    assert json.loads(settings.read_text()) == {"permissions": {"deny": ["Bash(rm:*)"]}, "model": "x"}
    assert lines(run_relay("doctor", extra_env=extra), "PASS  woken Claude:")


def test_a_project_deny_rule_where_a_claude_session_wakes_is_a_warning(run_relay, tmp_path):
    project = tmp_path / "api"
    (project / ".claude").mkdir(parents=True)
    denied = project / ".claude" / "settings.local.json"
    denied.write_text(json.dumps({"permissions": {"deny": ["mcp__plugin_session-relay_bus__*"]}}))
    session = new_id()
    assert run_relay("register", "api", "--id", session, "--dir", str(project), "--tool", "claude").returncode == 0
    result = run_relay("doctor")
    [line] = lines(result, "WARN  woken Claude:")
    assert str(denied) in line


def test_a_disabled_claude_plugin_is_a_warning(run_relay, tmp_path):
    claude = tmp_path / "claude-config"
    claude.mkdir()
    (claude / "settings.json").write_text(json.dumps({"enabledPlugins": {PLUGIN_ID: False}}))
    result = run_relay("doctor", extra_env={"CLAUDE_CONFIG_DIR": str(claude)})
    [line] = lines(result, "WARN  Claude Code: session-relay is disabled")
    assert fix_of(line) == f"claude plugin enable {PLUGIN_ID}"


def install_in_claude(claude: Path, marketplace: Path) -> None:
    """What `claude plugin marketplace add DIR` + `claude plugin install` leave (Claude Code 2.1.197)."""
    plugins = claude / "plugins"
    cache = plugins / "cache" / "session-relay" / "session-relay" / "0.2.0"
    cache.mkdir(parents=True)
    entry = {"scope": "user", "installPath": str(cache), "version": "0.2.0"}
    (plugins / "installed_plugins.json").write_text(json.dumps({"version": 2, "plugins": {PLUGIN_ID: [entry]}}))
    source = {"source": {"source": "directory", "path": str(marketplace)}, "installLocation": str(marketplace)}
    (plugins / "known_marketplaces.json").write_text(json.dumps({"session-relay": source}))


def test_claude_not_installed_is_said(run_relay):
    assert lines(run_relay("doctor"), "PASS  Claude Code: session-relay is not installed")


def test_claude_running_this_checkout_passes(run_relay, tmp_path):
    claude = tmp_path / "claude-config"
    install_in_claude(claude, REPO)
    result = run_relay("doctor", extra_env={"CLAUDE_CONFIG_DIR": str(claude)})
    assert lines(result, f"PASS  Claude Code runs this checkout itself ({REPO}"), result.stdout


def test_claude_running_another_clone_is_a_warning_with_the_reinstall(run_relay, tmp_path):
    claude = tmp_path / "claude-config"
    other = plugin_copy(tmp_path / "other-clone")
    (other / "relay" / "faces" / "bus.py").write_text("# older\n")
    install_in_claude(claude, other)
    result = run_relay("doctor", extra_env={"CLAUDE_CONFIG_DIR": str(claude)})
    [line] = lines(result, "WARN  Claude Code runs another copy of session-relay")
    assert str(other) in line and "relay/faces/bus.py" in line and "same version" in line
    assert fix_of(line) == (
        "claude plugin marketplace remove session-relay && "
        f"claude plugin marketplace add {shlex.quote(str(REPO))} && claude plugin install {PLUGIN_ID}"
    )


def test_codex_cache_like_this_checkout_passes_and_an_old_one_warns(run_relay, codex_home):
    copy = install_in_codex(codex_home, trusted=CODEX_EVENTS)
    extra = {"CODEX_HOME": str(codex_home)}
    assert lines(run_relay("doctor", extra_env=extra), "PASS  Codex runs a copy identical to this checkout")
    (copy / "relay" / "usecases" / "mail.py").write_text("# an older mail.py\n")
    manifest = copy / ".codex-plugin" / "plugin.json"
    manifest.write_text(manifest.read_text().replace('"version": "0.2.0"', '"version": "0.1.9"'))
    (copy / "pyproject.toml").write_text(
        (copy / "pyproject.toml").read_text().replace('version = "0.2.0"', 'version = "0.1.9"')
    )
    result = run_relay("doctor", extra_env=extra)
    [line] = lines(result, "WARN  Codex runs another copy of session-relay")
    assert "version 0.1.9, this checkout's is 0.2.0" in line and "relay/usecases/mail.py" in line
    assert fix_of(line) == f"codex plugin add {PLUGIN_ID}"


def test_codex_marketplace_elsewhere_gets_the_marketplace_switched_too(run_relay, codex_home, tmp_path):
    copy = install_in_codex(codex_home, trusted=CODEX_EVENTS, source=tmp_path / "elsewhere")
    (copy / "launcher").write_text("#!/bin/sh\n")
    [line] = lines(run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)}), "WARN  Codex runs another copy")
    assert fix_of(line) == (
        f"codex plugin marketplace remove session-relay && codex plugin marketplace add {shlex.quote(str(REPO))} "
        f"&& codex plugin add {PLUGIN_ID}"
    )


# -- the binary's freshness, in a checkout of its own ----------------------------------------------


def _triple() -> str:
    uname = os.uname()
    cpu = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[uname.machine]
    return f"{cpu}-{'unknown-linux-musl' if uname.sysname == 'Linux' else 'apple-darwin'}"


def checkout_with_binary(tmp_path: Path) -> tuple[Path, Path]:
    """A source checkout whose bin/relay-<platform> runs the program under test and is recorded in
    build/built-from.txt as built from the checkout's current sources; (checkout, binary)."""
    checkout = plugin_copy(tmp_path / "checkout")
    (checkout / "build").mkdir()
    shutil.copy2(REPO / "build" / "source_hash.py", checkout / "build" / "source_hash.py")
    shutil.rmtree(checkout / "bin")
    (checkout / "bin").mkdir()
    words = relay_command()
    if words[0].endswith("/launcher"):  # the frozen binary: run it directly, so RELAY_LAUNCHER stays the copy's
        words = [str(REPO / "bin" / f"relay-{_triple()}"), *words[1:]]
    binary = checkout / "bin" / f"relay-{_triple()}"
    binary.write_text(f'#!/bin/sh\nexec {shlex.join(words)} "$@"\n')
    binary.chmod(0o755)
    record = subprocess.run(
        [sys.executable, "build/source_hash.py", "--record", _triple(), str(binary), str(checkout)],
        cwd=checkout,
        capture_output=True,
        check=False,
    )
    assert record.returncode == 0, record.stderr
    return checkout, binary


def doctor_in(checkout: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(checkout / "launcher"), "doctor"], env=env, capture_output=True, check=False, timeout=60)


def test_a_binary_built_from_the_current_sources_passes_and_a_stale_one_warns(env, tmp_path):
    checkout, _ = checkout_with_binary(tmp_path)
    fresh = doctor_in(checkout, env)
    assert lines(fresh, f"PASS  binary: bin/relay-{_triple()} was built from the current sources"), fresh.stdout
    (checkout / "relay" / "usecases" / "mail.py").write_text(
        (checkout / "relay" / "usecases" / "mail.py").read_text() + "\n# edited\n"
    )
    stale = doctor_in(checkout, env)
    assert stale.returncode == 0
    [line] = lines(stale, f"WARN  binary: bin/relay-{_triple()} was built from other sources")
    assert fix_of(line) == f"cd {shlex.quote(str(checkout))} && sh build/build-all.sh"


def test_a_binary_replaced_without_a_rebuild_warns(env, tmp_path):
    checkout, binary = checkout_with_binary(tmp_path)
    binary.write_text(binary.read_text() + "# replaced\n")
    assert lines(doctor_in(checkout, env), f"WARN  binary: bin/relay-{_triple()} is not the one build/built-from.txt")


def test_an_install_without_sources_skips_the_binary_check(env, tmp_path):
    checkout, _ = checkout_with_binary(tmp_path)
    shutil.rmtree(checkout / "relay")
    result = doctor_in(checkout, env)
    assert lines(result, "PASS  binary: no sources here"), result.stdout + result.stderr


def test_the_bus_rule_names_the_plugin_and_server_the_manifests_name():
    """Claude's permission rule for the bus is written out once (the hook imports nothing for it):
    it must stay mcp__plugin_<plugin>_<server>, as the manifests and the MCP config name them."""
    from relay.agents.claude import BUS_RULE
    from relay.agents.install_files import PLUGIN
    from relay.domain.bus_tools import SERVER

    assert f"mcp__plugin_{PLUGIN}_{SERVER}" == BUS_RULE
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == PLUGIN and SERVER in manifest["mcpServers"]


def test_a_wake_command_without_the_bus_allowed_is_a_warning_whose_fix_allows_it(env, tmp_path, monkeypatch):
    """In-process: the committed wake command always allows the bus; were it changed, doctor must say so."""
    from relay.agents import claude
    from relay.store.files import Store

    config = tmp_path / "claude-config"
    config.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setattr(claude, "WAKE_OPTIONS", ("--allowedTools", "Read"))
    [finding] = claude.woken_tools(Store())
    assert finding[0] == "WARN" and "does not allow mcp__plugin_session-relay_bus" in finding[1]
    assert subprocess.run(finding[2], shell=True, env=env, check=False).returncode == 0
    settings = json.loads((config / "settings.json").read_text())
    assert settings == {"permissions": {"allow": ["mcp__plugin_session-relay_bus"]}}


def test_codex_config_naming_the_plugin_without_its_copy_says_the_copy_is_missing(run_relay, codex_home):
    copy = install_in_codex(codex_home, trusted=CODEX_EVENTS)
    shutil.rmtree(copy)
    result = run_relay("doctor", extra_env={"CODEX_HOME": str(codex_home)})
    [line] = lines(result, "WARN  Codex hooks: Codex's copy of session-relay is missing")
    assert fix_of(line) == f"codex plugin add {PLUGIN_ID}"


def test_every_store_fact_code_has_words_and_a_store_without_registry_as_is_works(env):
    """In-process: the Redis store's facts ("unreachable") are worded, and the installation checks
    read its registry through registry() (it has no registry_as_is)."""
    from relay.store.files import Store
    from relay.usecases import doctor

    status, words, _ = doctor.store_finding("unreachable", "redis://host:6379/0", "connection refused")
    assert (status, words) == ("FAIL", "the store at redis://host:6379/0 does not answer: connection refused")
    codes = ["no-store", "store", "lock-free", "registry", "in-flight", "foreign", "loose-mode", "shared-home"]
    codes += ["symlink", "not-regular", "hard-links", "bad-registry", "bad-marker", "bad-lines", "quarantine"]
    codes += ["over-quota", "unreadable", "lock-busy", "lock-error"]
    for code in codes:  # none falls through to the raw "PATH: CODE DETAIL" of an unknown code
        status, words, _ = doctor.store_finding(code, "/s/x", "1 2" if code == "registry" else "fifo")
        assert not words.startswith(f"/s/x: {code} "), (code, words)

    class OtherStore:
        def __init__(self) -> None:
            self.inner = Store()

        def facts(self) -> list[tuple[str, str, str]]:
            return [("store", "redis://host:6379/0", "")]

        def registry(self):
            return self.inner.registry()

    found = doctor.report(OtherStore())  # type: ignore[arg-type]
    assert found[0] == ("PASS", "store at redis://host:6379/0", "")
    assert any(status == "PASS" and text.startswith("woken Claude:") for status, text, _ in found)


def install_in_qwen(qwen_home: Path, linked: Path | None = None) -> Path:
    """What `qwen extensions install <clone>:session-relay --consent` (a copy), or `qwen extensions
    link <clone>` (`linked`), leaves in Qwen Code 0.24.4's home; the extension dir."""
    installed = qwen_home / "extensions" / "session-relay"
    if linked is None:
        plugin_copy(installed)
        record = {"source": str(REPO), "type": "local", "pluginName": "session-relay", "originSource": "QwenCode"}
    else:
        installed.mkdir(parents=True)
        record = {"source": str(linked), "type": "link", "originSource": "QwenCode"}
    (installed / ".qwen-extension-install.json").write_text(json.dumps(record))
    return installed


def test_qwen_not_installed_is_said(run_relay, tmp_path):
    result = run_relay("doctor", extra_env={"QWEN_HOME": str(tmp_path / "qwen")})
    assert lines(result, "PASS  Qwen Code: session-relay is not installed")


def test_qwen_linked_to_this_checkout_passes_and_to_another_clone_warns(run_relay, tmp_path):
    qwen_home = tmp_path / "qwen"
    install_in_qwen(qwen_home, linked=REPO)
    extra = {"QWEN_HOME": str(qwen_home)}
    assert lines(run_relay("doctor", extra_env=extra), f"PASS  Qwen Code runs this checkout itself ({REPO}")
    other = plugin_copy(tmp_path / "other-clone")
    (other / "relay" / "faces" / "bus.py").write_text("# older\n")
    (qwen_home / "extensions" / "session-relay" / ".qwen-extension-install.json").write_text(
        json.dumps({"source": str(other), "type": "link"})
    )
    [line] = lines(run_relay("doctor", extra_env=extra), "WARN  Qwen Code runs another copy of session-relay")
    assert str(other) in line and "relay/faces/bus.py" in line
    assert fix_of(line) == f"qwen extensions uninstall session-relay && qwen extensions link {shlex.quote(str(REPO))}"


def test_qwen_copy_like_this_checkout_passes_and_an_old_one_warns(run_relay, tmp_path):
    qwen_home = tmp_path / "qwen"
    copy = install_in_qwen(qwen_home)
    extra = {"QWEN_HOME": str(qwen_home)}
    assert lines(run_relay("doctor", extra_env=extra), "PASS  Qwen Code runs a copy identical to this checkout")
    (copy / "relay" / "usecases" / "mail.py").write_text("# an older mail.py\n")
    [line] = lines(run_relay("doctor", extra_env=extra), "WARN  Qwen Code runs another copy of session-relay")
    assert "relay/usecases/mail.py" in line and "qwen extensions link" in fix_of(line)
    (copy / "qwen-extension.json").unlink()
    assert lines(run_relay("doctor", extra_env=extra), "WARN  Qwen Code's copy of session-relay is missing")
