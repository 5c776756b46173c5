"""How a model reads text that may hold a fence tag: lookalike characters, escapes and entities
folded into a normalised view, with a map back to the original (relay.usecases.fence's defusing).

Loaded only for text that holds a character that may start a tag (`<`, `&`, `%`, `\\` or any
non-ASCII): plain ASCII mail, the usual case, never needs these tables and patterns, whose
constants alone cost a frozen hook start ~0.7 M instructions (docs/startup.md).
"""

TYPE_CHECKING = False  # re is imported only when a pattern is first needed
if TYPE_CHECKING:
    import re

# Characters a model reads as another character. Keys are looked up after NFKD (which already turns
# fullwidth, small-form, mathematical and circled forms into ASCII) and again after lower-casing.
_LOOKALIKES = {
    "<": "\u00ab\u02c2\u02f1\u1438\u2039\u2329\u27e8\u27ea\u276c\u276e\u2770\u2991\u2993\u29fc\u22d6\u2a79\u3008\u300a",
    ">": "\u00bb\u02c3\u02f2\u1433\u203a\u232a\u27e9\u27eb\u276d\u276f\u2771\u2992\u2994\u29fd\u22d7\u2a7a\u3009\u300b",
    "/": "\u2044\u2215\u2571\u27cb\u29f8\u1735\u3033\u30ce\u4e3f",
    "\\": "\u2216\u2572\u27cd\u29f5\u29f9\u3035",
    "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\u2053\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u301c\u30a0\u30fc"
    "\u05be\u1806\u2796\u02d7\u2cba\u2cbb\ufe31\ufe32\ufe58\u207b\u208b",
    "a": "\u0430\u0410\u03b1\u0391\u0251\u1d00\u237a",
    "e": "\u0435\u0415\u03b5\u0395\u0454\u04bd\u1d07\u212e",
    "i": "\u0456\u0406\u03b9\u0399\u0269\u0131\u026a\u04cf\u04c0\u01c0\u05c0",
    "l": "\u029f",
    "m": "\u043c\u041c\u039c\u1d0d",
    "n": "\u043f\u03b7\u039d\u0578\u0274",
    "o": "\u043e\u041e\u03bf\u039f\u0585\u1d0f",
    "r": "\u0433\u0413\u0280",
    "s": "\u0455\u0405\ua731\u023f",
    "y": "\u0443\u0423\u03b3\u03a5\u04af\u04ae\u028f",
}
_MAP = {ch: plain for plain, chars in _LOOKALIKES.items() for ch in chars}
# Invisible letters that categories alone do not catch (Hangul fillers).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")
# Categories that render as nothing (format, marks, controls) or as nothing a reader can rely on.
_DROP = frozenset(("Cf", "Cc", "Mn", "Me", "Cs", "Co", "Cn"))

# Every character whose view holds a `<` (lookalikes, NFKD sources), plus the starts of escapes.
# A tag starts at one of them: text without one that reads as `<` is returned at once, and the
# normalised view is built only from the first one on.
_MAYBE = (
    "[" + "".join("\\" + ch if ch in "\\]^-[" else ch for ch in "<&%\\" + _LOOKALIKES["<"] + "\u226e\ufe64\uff1c") + "]"
)
# Printable ASCII with no escape starts: its view is itself, so the tag pattern runs on it directly.
_PLAIN = r"[\t\n\r\x20-\x24\x27-\x5b\x5d-\x7e]*"
_NOT_PLAIN = r"[^\t\n\r\x20-\x24\x27-\x5b\x5d-\x7e]"

_ESCAPE = (
    r"&(?:amp;)*(?:#([0-9]{1,8});?|#[xX]([0-9a-fA-F]{1,8});?|([A-Za-z][A-Za-z0-9]{0,31};?))"
    r"|\\(?:u\{([0-9a-fA-F]{1,8})\}|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2}))"
    r"|%([0-9a-fA-F]{2})"
)


def _word(letters: str) -> str:
    """A pattern for `letters` that also accepts the digit and symbol stand-ins a reader looks past."""
    stand_ins = {"s": "[s5$]", "e": "[e3]", "i": "[i1l|!]", "o": "[o0]", "l": "[l1i|]", "a": "[a4@]", "m": "(?:m|rn)"}
    return "".join(stand_ins.get(ch, ch) for ch in letters)


_SEP = r"[\s\-_.]*"
# A fence tag as a reader sees it: open or close (either slash), any spacing, separators between the
# words, then attributes up to `>` - or no `>` at all, since an unterminated tag still reads as one.
_TAG = (
    r"(?i)<\s*[/\\]?\s*"
    + _SEP.join(_word(word) for word in ("session", "relay", "mail"))
    + r"(?![a-z0-9])(?:[^<>]{0,256}>)?"
)

_COMPILED: "dict[str, re.Pattern[str]]" = {}


def _re(source: str) -> "re.Pattern[str]":
    """`source` compiled on first use: compiling all of them costs milliseconds that most hook runs never need."""
    pattern = _COMPILED.get(source)
    if pattern is None:
        import re

        pattern = _COMPILED[source] = re.compile(source)
    return pattern


_FOLDED: dict[str, str] = {}


def _fold(ch: str) -> str:
    """What one character reads as: NFKD, lower case, lookalikes mapped; invisible ones read as nothing."""
    folded = _FOLDED.get(ch)
    if folded is not None:
        return folded
    import unicodedata  # only text with a character that may read as `<` gets here

    out = []
    for part in unicodedata.normalize("NFKD", ch):
        mapped = _MAP.get(part)
        for piece in mapped or part.lower():
            if piece.isspace():
                out.append(" ")
            elif piece not in _INVISIBLE and unicodedata.category(piece) not in _DROP:
                out.append(_MAP.get(piece, piece))
    folded = "".join(out)
    if len(_FOLDED) > 8192:
        _FOLDED.clear()
    _FOLDED[ch] = folded
    return folded


def _named_entity(name: str, terminated: bool) -> tuple[str, int] | None:
    """An HTML named entity's text and how many characters of `name` it uses (legacy ones need no `;`)."""
    from html.entities import html5  # only text with `&name` pays for the table

    if terminated and name + ";" in html5:
        return html5[name + ";"], len(name) + 1
    for size in range(min(len(name), 6), 1, -1):
        if name[:size] in html5:
            return html5[name[:size]], size
    return None


def _decode(text: str, at: int) -> tuple[str, int] | None:
    """The character an entity or escape starting at `at` stands for, and where it ends."""
    match = _re(_ESCAPE).match(text, at)
    if not match:
        return None
    name = match.group(3)
    if name is not None:
        terminated = name.endswith(";")
        found = _named_entity(name.rstrip(";"), terminated)
        if found is None:
            return None
        return found[0], match.start(3) + found[1]
    digits = next(group for group in match.groups() if group is not None)
    code = int(digits, 10 if match.group(1) is not None else 16)
    if code > 0x10FFFF:
        return None
    if 0x80 <= code <= 0x9F and text[at] == "&":  # HTML reads &#139; as windows-1252 does: U+2039
        return bytes([code]).decode("cp1252", "ignore") or chr(code), match.end()
    return chr(code), match.end()


def _decode_nested(text: str, at: int) -> tuple[str, int] | None:
    """Like `_decode`, but an escape that stands for `&`, `\\` or `%` may start another (`&#38;lt;`)."""
    decoded = _decode(text, at)
    while decoded and decoded[0] in ("&", "\\", "%"):
        end = decoded[1]
        inner = _decode(decoded[0] + text[end : end + 64], 0)
        if inner is None:
            break
        decoded = inner[0], end + inner[1] - 1
    return decoded


def _first_open(text: str) -> int:
    """Where the first character that reads as `<` starts (a tag starts there), or -1."""
    for maybe in _re(_MAYBE).finditer(text):
        at = maybe.start()
        if text[at] not in "&\\%":
            return at
        decoded = _decode_nested(text, at)
        if decoded and "<" in _fold(decoded[0]):
            return at
    return -1


def _view(text: str, pos: int) -> tuple[str, list[int], list[int]]:
    """The text from `pos` as a reader sees it, with each view character's original span (start, end)."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for special in _re(_NOT_PLAIN).finditer(text, pos):
        at = special.start()
        if at < pos:
            continue  # inside an escape already decoded
        if at > pos:
            parts.append(text[pos:at])
            starts.extend(range(pos, at))
            ends.extend(range(pos + 1, at + 1))
        decoded = _decode_nested(text, at) if text[at] in "&\\%" else None
        folded, end = (_fold(decoded[0]), decoded[1]) if decoded else (_fold(text[at]), at + 1)
        parts.append(folded)
        starts.extend([at] * len(folded))
        ends.extend([end] * len(folded))
        pos = end
    if pos < len(text):
        parts.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
    return "".join(parts), starts, ends


def defuse_tags(text: str, replacement: str) -> str:
    """Every span of `text` that reads as a fence tag becomes `replacement`; all other text is kept verbatim."""
    first = _first_open(text)
    if first < 0:
        return text
    tag = _re(_TAG)
    if _re(_PLAIN).fullmatch(text, first):
        spans = [match.span() for match in tag.finditer(text, first)]
    else:
        view, starts, ends = _view(text, first)
        spans = [(starts[match.start()], ends[match.end() - 1]) for match in tag.finditer(view)]
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end in spans:
        if end > pos:  # two matches can share one original character that reads as several
            out += [text[pos : max(start, pos)], replacement]
            pos = end
    out.append(text[pos:])
    return "".join(out)
