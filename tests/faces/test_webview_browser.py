"""`relay ui`'s page in a real headless Chromium (Debian's `chromium`, driven over the DevTools protocol by
tests/browser.py): it lists the sessions and a thread; mail sent with `relay send` while it is open shows
without a reload; its send box queues mail from `user` that the recipient's inbox then holds; and a body
that is HTML stays text, nothing in it runs. Without Chromium these tests skip, or fail when
RELAY_REQUIRE_REAL_CLIENTS=1 (as .ci/run sets). RELAY_UI_SCREENSHOT=PATH keeps the screenshot of the
three-session conversation (docs/webview.png is made so)."""

import json
import os
import struct
import time
from pathlib import Path

import pytest
from browser import Chromium, chromium_path
from realclients import give_up
from test_log import prompt, send
from test_webview import UI, trio  # noqa: F401 - trio is a fixture used here

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold?</b> & done'


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory):
    binary = chromium_path()
    if binary is None:
        give_up("chromium is not installed (apt-get install chromium), or CHROMIUM names no program")
    assert binary is not None
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(chromium: Chromium, env: dict[str, str], tmp_path: Path, trio):  # noqa: F811 - the fixture
    server = UI(env, tmp_path)
    try:
        chromium.navigate(server.url)
        chromium.wait_for("document.getElementById('link')?.textContent === 'live'")
        yield chromium, server
    finally:
        chromium.navigate("about:blank")
        server.stop()


def texts(browser: Chromium, selector: str) -> list[str]:
    return browser.evaluate(f"Array.from(document.querySelectorAll({json.dumps(selector)}), e => e.textContent)")  # type: ignore[return-value]


def converse(run_relay, trio: dict[str, str], tmp_path: Path) -> tuple[str, str]:  # noqa: F811
    """web asks api, api gets it and answers, docs is told: (question id, reply id)."""
    question = send(
        run_relay, "api", "--from", "web", "--", "Is v2 of /orders final? I am about to generate the client."
    )
    assert "Is v2 of /orders final?" in prompt(run_relay, trio["api"], tmp_path / "api")
    reply = send(run_relay, "web", "--from", "api", "--reply-to", question, "--", "Final since Monday; use /v2/orders.")
    send(run_relay, "docs", "--from", "api", "--", "v2 of /orders is final: please document the new pagination.")
    return question, reply


def test_the_page_lists_sessions_and_threads_and_shows_new_mail_without_a_reload(page, run_relay, trio, tmp_path):  # noqa: F811
    browser, _server = page
    question, reply = converse(run_relay, trio, tmp_path)
    for name, tool in (("web", "codex"), ("docs", "gemini")):
        assert run_relay("register", name, "--id", trio[name], "--tool", tool).returncode == 0
    ended = {"session_id": trio["docs"], "hook_event_name": "SessionEnd", "reason": "exit", "cwd": str(tmp_path)}
    assert run_relay("hook", input=json.dumps(ended)).returncode == 0
    browser.wait_for(f"document.querySelector('[data-id=\"{reply}\"]') !== null")
    browser.wait_for(f"document.querySelector('#sessions [data-id=\"{trio['docs']}\"]').dataset.state === 'ended'")
    shown = zip(
        texts(browser, "#sessions .name"),
        texts(browser, "#sessions .tool"),
        texts(browser, "#sessions .state"),
        strict=True,
    )
    assert sorted(shown) == [("api", "claude", "idle"), ("docs", "gemini", "ended"), ("web", "codex", "idle")]
    thread = f'[data-thread="{question}"] .msg'
    assert texts(browser, f"{thread} .body") == [
        "Is v2 of /orders final? I am about to generate the client.",
        "Final since Monday; use /v2/orders.",
    ]
    browser.wait_for(f"document.querySelector('[data-id=\"{question}\"]').dataset.state === 'replied'")
    assert texts(browser, f'[data-id="{question}"] .badge') == ["replied"]
    assert texts(browser, f'[data-id="{reply}"] .who') == ["api → web"]

    browser.evaluate("window.__sameDocument = true")
    sent_at = time.monotonic()
    late = send(run_relay, "web", "--from", "docs", "--", "Docs updated for v2.")
    took = browser.wait_for(f"document.querySelector('[data-id=\"{late}\"]') !== null", timeout=15, every=0.05)
    print(f"a message sent with relay send showed in the page after {time.monotonic() - sent_at:.2f} s")
    assert browser.evaluate("window.__sameDocument === true")  # no reload
    assert took < 15
    assert texts(browser, f'[data-id="{late}"] .badge') == ["queued"]
    assert "Docs updated for v2." in texts(browser, ".body")

    screenshot = browser.screenshot()
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", screenshot[16:24]) == (1200, 800)
    keep = os.environ.get("RELAY_UI_SCREENSHOT")
    if keep:  # for the docs: the projects where a person would have them, not this test's tmp dirs
        for name in trio:
            assert run_relay("register", name, "--id", trio[name], "--dir", f"/home/ana/src/{name}").returncode == 0
        browser.wait_for(
            "Array.from(document.querySelectorAll('#sessions .dir')).every(e => e.textContent.startsWith('/home/'))"
        )
        Path(keep).write_bytes(browser.screenshot())


def test_the_send_box_queues_mail_from_user_and_replies_join_the_thread(page, run_relay, trio, tmp_path):  # noqa: F811
    browser, _server = page
    question = send(run_relay, "web", "--from", "api", "--", "Which port does the staging proxy use?")
    browser.wait_for(f"document.querySelector('[data-id=\"{question}\"]') !== null")
    fill = """
      document.getElementById('to').value = 'docs';
      document.getElementById('text').value = 'Please add the v2 changelog.\\nThanks!';
      document.getElementById('send').click();
    """
    browser.evaluate(fill)
    browser.wait_for("document.getElementById('result').textContent.startsWith('queued ')")
    assert browser.evaluate("document.getElementById('text').value") == ""
    inbox = json.loads(run_relay("inbox", "docs").stdout)
    assert [(m["fromName"], m["from"], m["body"]) for m in inbox["messages"]] == [
        ("user", None, "Please add the v2 changelog.\nThanks!")
    ]

    # reply to api's question from its thread: the reply goes to api, in that thread
    browser.evaluate(f"document.querySelector('[data-id=\"{question}\"] button').click()")
    assert browser.evaluate("document.getElementById('to').value") == "api"
    browser.evaluate("document.getElementById('text').value = '8443'; document.getElementById('send').click()")
    browser.wait_for(f"document.querySelectorAll('[data-thread=\"{question}\"] .msg').length === 2")
    inbox = json.loads(run_relay("inbox", "api").stdout)
    [answer] = inbox["messages"]
    assert (answer["fromName"], answer["body"], answer["replyTo"], answer["thread"]) == (
        "user",
        "8443",
        question,
        question,
    )
    assert texts(browser, f'[data-thread="{question}"] .who')[-1] == "user → api"

    # what relay send refuses, the page says in one line and queues nothing
    browser.evaluate("document.getElementById('to').value = 'docs'; document.getElementById('text').value = '  ';")
    browser.evaluate("document.getElementById('send').click()")
    browser.wait_for("document.getElementById('result').className === 'error'")
    assert "empty message" in str(browser.evaluate("document.getElementById('result').textContent"))
    assert json.loads(run_relay("peek", "docs").stdout)["messages"] == []


def test_a_body_of_html_stays_text_and_nothing_in_it_runs(page, run_relay, trio):  # noqa: F811
    browser, _server = page
    hostile = send(run_relay, "api", "--", HOSTILE)
    status, _ = _server.post({"to": "web", "body": HOSTILE})
    assert status == 200
    browser.wait_for(f"document.querySelector('[data-id=\"{hostile}\"]') !== null")
    browser.wait_for("document.querySelectorAll('.body').length === 2")
    time.sleep(0.5)  # an onerror would have fired by now
    assert texts(browser, ".body") == [HOSTILE, HOSTILE]
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('#threads img, #threads script, #threads b').length") == 0
    assert browser.evaluate("document.scripts.length") == 1  # the page's own


def test_without_the_token_the_page_is_refused_in_the_browser_too(chromium, env, tmp_path):
    server = UI(env, tmp_path)
    try:
        chromium.navigate(server.url.split("?")[0])
        chromium.wait_for("document.body !== null && document.body.textContent.includes('forbidden')")
        assert chromium.evaluate("document.getElementById('sessions')") is None
    finally:
        chromium.navigate("about:blank")
        server.stop()
