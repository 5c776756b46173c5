"""docs/redis-store.md quotes the ACL user a managed Redis needs. The list that is verified against a
real redis-server is tests/store/test_redisdb.py's ACL_COMMANDS; the page must quote exactly that
list, so a command the store learns (and the test adds) cannot be missing from it."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _verified_acl() -> list[str]:
    tree = ast.parse((REPO / "tests" / "store" / "test_redisdb.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ACL_COMMANDS" for t in node.targets):
            return ast.literal_eval(node.value).split()
    raise AssertionError("tests/store/test_redisdb.py has no ACL_COMMANDS")


def test_the_redis_page_quotes_the_verified_acl_user():
    page = (REPO / "docs" / "redis-store.md").read_text()
    lines = [line for line in page.splitlines() if line.startswith("ACL SETUSER relay")]
    assert len(lines) == 1, "docs/redis-store.md must show one ACL SETUSER line for relay's user"
    words = lines[0].split()
    assert words[:4] == ["ACL", "SETUSER", "relay", "reset"] and "~relay:*" in words and "resetchannels" in words
    assert [word[1:] for word in words if word.startswith("+")] == _verified_acl()
