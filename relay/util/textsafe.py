"""Making untrusted text safe to show: on a terminal, and on one line of a model's context.

Names, dirs, cwds and message bodies come from other sessions or from files anyone on the machine
may have planted. Shown raw, a control character can rewrite a terminal (an escape sequence that
clears the screen or writes the clipboard), a bidi override can make text read differently from
what it holds, and a line break can forge a new line that looks like relay's own. Everything here
is a `str.translate` table built once, when first needed: no regular expressions on the hook's path.
"""

# Characters that break a line for some reader (str.splitlines, Unicode, a terminal, a model).
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"

# Invisible characters that reorder how text reads (bidi embeddings, overrides, isolates, marks).
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _table(keep: str = "") -> dict[int, str]:
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    codes = {*controls, *(ord(ch) for ch in _BIDI + LINE_BREAKS)} - {ord(ch) for ch in keep}
    return {code: _escape(code) for code in codes}


# [one line, body], built on the first text that needs them: printable text (the usual case) never
# does, and building them is ~0.6 M instructions of a start (the MCP server imports this module).
# One line: every control, line break and bidi character becomes a visible escape such as \x1b.
# A body: tabs stay, every line break becomes "\n" (for `indent_lines`), the rest is escaped.
_TABLES: list[dict[int, str]] = []


def _tables() -> list[dict[int, str]]:
    if not _TABLES:
        _TABLES.append(_table())
        _TABLES.append({**_table(keep="\t" + LINE_BREAKS), **{ord(brk): "\n" for brk in LINE_BREAKS}})
    return _TABLES


def one_line(text: str) -> str:
    """`text` with nothing that could break the line or drive a terminal (for names, dirs, ids, ts)."""
    # Everything the table escapes is unprintable, so printable text (the usual case) needs no pass.
    return text if text.isprintable() else text.translate(_tables()[0])


def indent_lines(text: str, indent: str = "  ") -> str:
    """A multi-line body as one logical item: every line break (`\\r\\n`, `\\r`, `\\n`, U+2028, ...)
    becomes a newline followed by `indent`, and other controls become visible escapes, so a body
    can never start a line of its own."""
    if text.isprintable():
        return text
    return text.replace("\r\n", "\n").translate(_tables()[1]).replace("\n", "\n" + indent)
