"""relay.util.textsafe: what it escapes, and that its tables cost nothing to a start that shows only
printable text (the MCP server imports it at every session start)."""

import subprocess
import sys

from conftest import REPO

from relay.util.textsafe import indent_lines, one_line


def test_one_line_escapes_controls_breaks_and_bidi():
    assert one_line("a\x1b[2Jb\nc\u202ed\x7f") == "a\\x1b[2Jb\\x0ac\\u202ed\\x7f"
    assert one_line("plain text, ünï") == "plain text, ünï"


def test_indent_lines_keeps_tabs_and_indents_every_break():
    assert indent_lines("a\tb\r\nc\u2028d\x07", "  ") == "a\tb\n  c\n  d\\x07"


def test_the_tables_are_built_only_for_text_that_needs_them():
    code = (
        "from relay.util import textsafe; textsafe.one_line('ok'); textsafe.indent_lines('ok');"
        "print(len(textsafe._TABLES)); textsafe.one_line('\\x1b'); print(len(textsafe._TABLES))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0", "2"]
