"""`relay <command> --help`, `relay help`, the usage errors that point at them, and the header line
`list` and `discover` print on a terminal. Black-box through RELAY_CMD, except the checks
that the help and the parser read one command table (relay.faces.command_table) and agree with it."""

import json
import os
import pty
import re
import select
import subprocess
from pathlib import Path

import pytest
from agent_files import claude_transcript, codex_rollout
from conftest import new_id

from relay.faces.command_table import SHAPES
from relay.faces.helptext import FACES, TOPICS, render, usages

REPO = Path(__file__).resolve().parents[2]
TOPIC_NAMES = [*SHAPES, *FACES]
SECTIONS = ("usage: ", "\noptions:\n", "\noutput:\n", "\nexit status:\n", "\nexample:\n  relay ")
KNOWN_EXITS = {"0", "1", "2", "4", "75", "other"}


def help_of(run_relay, *args: str) -> str:
    result = run_relay(*args, input=b"")
    assert result.returncode == 0, (args, result.stderr)
    assert result.stderr == b""
    return result.stdout.decode()


def section(text: str, title: str) -> list[str]:
    """The lines of one `title:` section of a help text, up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def exit_codes(text: str) -> set[str]:
    return {line.split()[0] for line in section(text, "exit status") if not line.startswith("   ")}


def columns(text: str) -> list[str]:
    [line] = [line for line in section(text, "output") if line.startswith("  columns: ")]
    return line.removeprefix("  columns: ").split(", ")


# -- every command has a whole help --------------------------------------------------------------


@pytest.mark.parametrize("name", TOPIC_NAMES)
def test_every_command_has_usage_options_output_exit_codes_and_an_example(run_relay, store_home, name):
    words = name.split()
    text = help_of(run_relay, *words, "--help")
    for title in SECTIONS:
        assert title in text, (name, title, text)
    assert text.startswith(f"usage: relay {name}"), text
    assert "-h, --help" in text
    assert exit_codes(text) <= KNOWN_EXITS and "0" in exit_codes(text)
    # the same text however it is asked for
    assert help_of(run_relay, *words, "-h") == text
    assert help_of(run_relay, "help", *words) == text
    assert help_of(run_relay, "--help", *words) == text
    assert not store_home.exists(), "asking for help touches no store"


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_option_is_shown_with_its_meaning_and_default(run_relay, name):
    text = help_of(run_relay, name, "--help")
    spec = SHAPES[name]
    options = "\n".join(section(text, "options"))
    for option in (*spec.values, *spec.flags):
        shown = re.search(rf"^  {re.escape(option)}\b(.*?)(?=^  -)", options + "\n  -", re.M | re.S)
        assert shown, (name, option, options)
        described = " ".join(shown.group(1).split())
        assert re.search(r"\S.*\((default: [^)]+|required[^)]*)\)$", described), (name, option, described)
    arguments = "\n".join(section(text, "arguments")) if spec.positionals or spec.message else ""
    for word in (*spec.positionals, *(("MESSAGE",) if spec.message else ())):
        assert re.search(rf"^  {word}\s+\S", arguments, re.M), (name, word, arguments)


def test_exit_codes_are_those_the_command_can_return(run_relay):
    """4 is ask's alone, 75 wake's; every people command can fail (1) and be misused (2)."""
    for name in SHAPES:
        codes = exit_codes(help_of(run_relay, name, "--help"))
        assert {"0", "1", "2"} <= codes, name
        assert ("4" in codes) == (name == "ask"), name
        assert ("75" in codes) == (name == "wake"), name
    assert exit_codes(help_of(run_relay, "hook", "--help")) == {"0"}
    assert exit_codes(help_of(run_relay, "hook", "watch", "--help")) == {"0", "2"}


def test_the_list_names_every_command_with_one_line(run_relay, store_home):
    text = help_of(run_relay, "--help")
    assert help_of(run_relay) == text and help_of(run_relay, "help") == text and help_of(run_relay, "-h") == text
    lines = text.splitlines()
    for name in TOPIC_NAMES:
        [line] = [line for line in lines if re.match(rf"  {re.escape(name)}  +\S", line)]
        assert len(line) <= 120, line
    assert "--help" in text and not store_home.exists()


# -- --help anywhere, but never after -- -------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("send", "bob", "--dry", "--help"),  # an unknown option before it
        ("send", "--help", "bob", "--", "hi"),
        ("list", "extra", "-h"),
        ("register", "--help"),  # missing NAME and --id
        ("wake", "bob", "--force", "--help", "now"),
        ("discover", "--limit", "x", "--help"),
        ("gc", "--older-than=3", "--help"),
        ("bus", "extra", "--help"),
        ("demo", "--fast", "-h"),
        ("version", "--help"),
        ("--version", "--help"),
        ("hook", "codex", "--help"),
    ],
)
def test_help_anywhere_in_a_commands_argv_shows_its_help(run_relay, store_home, args):
    command = "version" if args[0] == "--version" else args[0]
    text = help_of(run_relay, *args)
    assert text.startswith(f"usage: relay {command}"), text
    assert not store_home.exists()


def test_after_dashdash_help_is_message_text(run_relay, store_home):
    bob = new_id()
    assert run_relay("register", "bob", "--id", bob).returncode == 0
    result = run_relay("send", "bob", "--", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"queued -> bob ")
    peeked = json.loads(run_relay("peek", "bob").stdout)
    assert [m["body"] for m in peeked["messages"]] == ["--help"]


def test_an_options_value_is_no_help_request(run_relay):
    """`--from --help`: the next word is --from's value (docs/cli.md), so no help is shown."""
    result = run_relay("send", "bob", "--from", "--help", "--", "hi")
    assert result.returncode == 1 and b"usage:" not in result.stdout


# -- usage errors point at the help ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("list", "--bogus"), "list"),
        (("list", "extra"), "list"),
        (("send", "bob", "--dry", "run"), "send"),
        (("send", "bob"), "send"),  # missing MESSAGE, found by the command itself
        (("register",), "register"),
        (("register", "alice"), "register"),  # --id is required
        (("register", "alice", "--id"), "register"),
        (("discover", "--tool", "aider"), "discover"),
        (("discover", "--limit", "1.5"), "discover"),
        (("ask", "bob", "--wait", "soon", "--", "hi"), "ask"),
        (("status",), "status"),
        (("wake", "--id", "11111111-1111-4111-8111-111111111111"), "wake"),
        (("gc", "--older-than", "0"), "gc"),
        (("doctor", "now"), "doctor"),
        (("bus", "extra"), "bus"),
        (("demo", "--fast"), "demo"),
        (("version", "x"), "version"),
    ],
)
def test_a_usage_error_is_one_line_ending_with_where_the_help_is(run_relay, store_home, args, command):
    result = run_relay(*args, input=b"")
    assert result.returncode == 2, (args, result.stderr)
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("relay: "), err
    assert err.endswith(f"(see relay {command} --help)\n"), err
    assert not (store_home / "agents").exists()


def test_help_for_no_such_command_is_a_usage_error(run_relay):
    result = run_relay("help", "frobnicate")
    assert result.returncode == 2 and result.stdout == b""
    assert "frobnicate" in result.stderr.decode() and "relay help" in result.stderr.decode()


# -- the help and the parser read one command table ---------------------------------------------


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_table_row_the_usage_and_the_help_name_the_same_options(name):
    """Fails when a row's option is missing from its usage line (with its METAVAR, or as a bare
    flag), a positional has no help, or the help names an option the row lacks (in its text or
    its example)."""
    spec, topic = SHAPES[name], TOPICS[name]
    assert set(spec.options) == set(spec.values) | set(spec.flags), name
    assert list(topic.positionals) == [*spec.positionals, *(("MESSAGE",) if spec.message else ())], name
    for option in spec.values:
        metavar = spec.options[option][0]
        assert metavar and f"{option} {metavar}" in spec.usage, (name, option, metavar)
    for option in spec.flags:
        assert f"[{option}]" in spec.usage, (name, option)
    text = render(name).replace(topic.example, topic.example.split(" -- ")[0])  # an example's message is text
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
    assert named <= {*spec.values, *spec.flags, "--help"}, (name, named)
    assert topic.example.startswith(f"relay {name}")


def test_the_defaults_the_help_states_are_the_real_ones():
    from relay.faces import command_table
    from relay.usecases import discover, gc

    assert command_table.DISCOVER_WITHIN_MIN == discover.DEFAULT_WITHIN_MIN
    assert command_table.DISCOVER_LIMIT == discover.DEFAULT_LIMIT
    assert command_table.GC_DAYS == gc.DEFAULT_DAYS
    assert SHAPES["discover"].options["--within"][2] == "60" and SHAPES["gc"].options["--older-than"][2] == "14"


def test_every_topic_is_a_command_relay_runs(run_relay):
    assert set(TOPICS) == {*SHAPES, *FACES}
    assert not set(FACES) & set(SHAPES), "faces parse their own words; only people commands have a row"


# -- the command table of docs/cli.md agrees with the help, and the README names every command --


def commands_section(path: Path) -> str:
    """The text of a page's "## Commands" section, up to its next heading."""
    text = path.read_text()
    commands = text[text.index("\n## Commands\n") + 1 :]
    end = re.search(r"\n#{1,3} ", commands)
    assert end is not None, f"{path.name}: nothing follows the Commands section"
    return commands[: end.start()]


def readme_rows() -> list[tuple[str, str]]:
    """(usage, example) of each row of the command table in docs/cli.md."""
    commands = commands_section(REPO / "docs" / "cli.md")
    rows = []
    for line in commands.splitlines():
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1].strip("`")))
    return rows


def test_readme_command_table_matches_the_help():
    rows = readme_rows()
    documented = {usage for usage, _ in rows}
    helped = {usage.removeprefix("relay ") for name in TOPICS for usage in usages(name)}
    assert documented == helped
    examples = {example for _, example in rows}
    for name in TOPICS:
        if not name.startswith(("hook", "bus")):  # the agent CLI runs those
            assert TOPICS[name].example in examples, name


def test_the_readme_command_table_names_every_command():
    """The README's compact table is not the reference, but it must not leave a command out."""
    shown = set(re.findall(r"`relay (--version|[a-z]+(?: watch)?)", commands_section(REPO / "README.md")))
    shown = {"version" if word == "--version" else word for word in shown}
    assert set(TOPICS) <= shown, sorted(set(TOPICS) - shown)


# -- headers on a terminal ---------------------------------------------------------------------


def on_terminal(relay_cmd: list[str], env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run relay with its stdout on a pseudo-terminal; (exit status, what it printed there)."""
    master, slave = pty.openpty()
    with subprocess.Popen(
        [*relay_cmd, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env
    ) as proc:
        os.close(slave)
        chunks = []
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "relay printed nothing for 30 s"
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
        assert proc.stderr is not None and proc.stderr.read() == b""
    os.close(master)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


def assert_header_over(text: str, titles: list[str], first_cells: list[str]) -> None:
    """The first line holds the column titles, each above the start of its column's value."""
    header, row, *_ = text.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == titles, header
    for title, cell in zip(titles, first_cells, strict=False):
        assert header.index(title) == row.index(cell), (title, cell, header, row)


def test_list_prints_a_header_on_a_terminal_only(run_relay, relay_cmd, env, tmp_path):
    a, b = new_id(), new_id()
    run_relay("register", "alpha", "--id", a, "--dir", str(tmp_path), "--tool", "codex")
    run_relay("register", "beta", "--id", b)
    titles = columns(help_of(run_relay, "list", "--help"))
    assert titles == ["NAME", "TOOL", "ID", "DELIVER", "DIR", "LAST SEEN"]
    code, text = on_terminal(relay_cmd, env, "list")
    assert code == 0
    assert len(text.splitlines()) == 3
    assert_header_over(text, titles, ["alpha", "codex", a, "turn", str(tmp_path)])
    piped = run_relay("list").stdout.decode()
    same = re.compile(r"\d+[smhd] ago")  # LAST SEEN is relative: a second may pass between the runs
    assert same.sub("N ago", piped).splitlines() == same.sub("N ago", text).splitlines()[1:], "no header in a pipe"
    code, text = on_terminal(relay_cmd, env, "list", "--json")
    assert code == 0 and [e["name"] for e in json.loads(text)] == ["alpha", "beta"]


def test_an_empty_list_on_a_terminal_prints_only_its_note(relay_cmd, env):
    code, text = on_terminal(relay_cmd, env, "list")
    assert code == 0 and text.startswith("no sessions registered yet") and text.count("\n") == 1


def test_discover_prints_a_header_on_a_terminal_only(run_relay, relay_cmd, env, tmp_path):
    claude_id, codex_id = new_id(), new_id()
    claude_transcript(Path(env["RELAY_CLAUDE_PROJECTS"]), "/src/web", session_id=claude_id, age=30)
    codex_rollout(Path(env["RELAY_CODEX_SESSIONS"]), "/src/api", session_id=codex_id, age=5)
    run_relay("register", "api", "--id", codex_id)
    titles = columns(help_of(run_relay, "discover", "--help"))
    assert titles == ["TOOL", "ID", "NAME", "LAST WRITE", "CWD"]
    code, text = on_terminal(relay_cmd, env, "discover")
    assert code == 0 and len(text.splitlines()) == 3
    header, first, _ = text.splitlines()
    assert_header_over(text, titles, ["codex", codex_id, "api"])
    assert header.index("CWD") == first.index("/src/api")
    assert header.index("LAST WRITE") + len("LAST WRITE") == first.index(" ago") + len(" ago")
    # the relative times may tick over between the two runs on a busy machine
    ages = re.compile(r"\b\d+[smhd] ago\b")
    plain = run_relay("discover").stdout.decode().splitlines()
    assert [ages.sub("AGE ago", row) for row in plain] == [ages.sub("AGE ago", row) for row in text.splitlines()[1:]]
    code, text = on_terminal(relay_cmd, env, "discover", "--json")
    assert code == 0 and {row["id"] for row in json.loads(text)} == {claude_id, codex_id}
