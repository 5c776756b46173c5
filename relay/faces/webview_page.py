"""The page of `relay ui` (relay.faces.webview): one HTML document, its style and script inline.

No external asset and no markup built from data: every name, path and body reaches the page
through textContent, so a message that holds HTML shows as the text it is. The script and style
carry the nonce of the response's content security policy, the only script and style it allows.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>relay ui</title>
<style nonce="__NONCE__">
:root { --bg: #f6f7f9; --card: #fff; --line: #dde1e6; --text: #1d2329; --muted: #6a737d; --accent: #2f6fdb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--text); background: var(--bg); }
header { display: flex; align-items: center; gap: 12px; padding: 10px 18px; background: #1d2329; color: #fff; }
header h1 { font-size: 16px; margin: 0; font-weight: 600; }
#link { margin-left: auto; font-size: 12px; color: #c9d1d9; }
#link.down { color: #ff9b8e; }
main { display: grid; grid-template-columns: 300px 1fr; gap: 16px; padding: 16px 18px; }
h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px;
  margin-bottom: 10px; }
#sessions { list-style: none; margin: 0; padding: 0; }
.session .top { display: flex; align-items: center; gap: 8px; }
.session .name { font-weight: 600; }
.session .dir { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.tool { font-size: 11px; padding: 1px 6px; border-radius: 4px; background: #eef1f5; color: #3a4450; }
.state { margin-left: auto; font-size: 11px; padding: 1px 7px; border-radius: 9px; }
.state.live { background: #dcf5e3; color: #17692f; }
.state.idle { background: #fff3cd; color: #7a5b00; }
.state.ended, .state.unknown { background: #eceef1; color: #59636e; }
.thread h3 { font-size: 12px; margin: 0 0 6px; color: var(--muted); font-weight: 500; }
.msg { border-top: 1px solid var(--line); padding: 8px 0 6px; }
.msg:first-of-type { border-top: 0; padding-top: 0; }
.msg.reply { margin-left: 22px; }
.meta { display: flex; gap: 8px; align-items: center; font-size: 12px; color: var(--muted); }
.meta .who { color: var(--text); font-weight: 600; }
.badge { font-size: 11px; padding: 0 6px; border-radius: 4px; border: 1px solid var(--line); }
.badge.queued { color: #7a5b00; border-color: #e7c95b; }
.badge.taken { color: #8a4b00; border-color: #f0a35e; }
.badge.delivered { color: #17692f; border-color: #7cc593; }
.badge.replied { color: #5b2bb5; border-color: #b49ae6; }
.badge.archived, .badge.forgotten { color: #59636e; }
.body { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 2px; }
.detail { font-size: 12px; color: var(--muted); }
button.link { margin-left: auto; border: 0; background: none; color: var(--accent); cursor: pointer; font-size: 12px; }
form { display: grid; grid-template-columns: auto 1fr auto; gap: 8px; align-items: start; }
form textarea { grid-column: 1 / 4; min-height: 54px; font: inherit; padding: 6px 8px; border: 1px solid var(--line);
  border-radius: 6px; resize: vertical; }
select, form button { font: inherit; padding: 4px 8px; }
form button { background: var(--accent); color: #fff; border: 0; border-radius: 6px; padding: 6px 14px;
  cursor: pointer; }
#replying { font-size: 12px; color: var(--muted); align-self: center; }
#result { font-size: 12px; color: var(--muted); min-height: 1em; }
#result.error { color: #b3261e; }
.empty { color: var(--muted); }
</style>
</head>
<body>
<header><h1>session-relay</h1><span id="counts"></span><span id="link">connecting…</span></header>
<main>
<section><h2>Sessions</h2><ul id="sessions"></ul></section>
<section>
<h2>Send as <span id="sender">user</span></h2>
<div class="card">
<form id="compose">
<select id="to" aria-label="to"></select>
<span id="replying"></span>
<button type="submit" id="send">Send</button>
<textarea id="text" aria-label="message" placeholder="Message"></textarea>
</form>
<div id="result"></div>
</div>
<h2>Threads</h2>
<div id="threads"></div>
</section>
</main>
<script nonce="__NONCE__">
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
let replyTo = null;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function who(id, name) { return name || (id ? String(id).slice(0, 8) : "relay"); }
function clock(ts) {
  const when = ts ? new Date(ts) : null;
  return when && !isNaN(when) ? when.toLocaleTimeString() : "";
}

function renderSessions(sessions) {
  const list = document.getElementById("sessions");
  list.replaceChildren();
  if (!sessions.length) list.append(el("li", "empty", "no sessions registered yet"));
  for (const s of sessions) {
    const item = el("li", "card session");
    item.dataset.id = s.id;
    item.dataset.state = s.state;
    const top = el("div", "top");
    top.append(el("span", "name", who(s.id, s.name)), el("span", "tool", s.tool || "?"),
               el("span", "state " + s.state, s.state));
    item.append(top, el("div", "dir", s.dir || "no dir"));
    list.append(item);
  }
  const to = document.getElementById("to");
  const chosen = to.value;
  const names = sessions.map((s) => s.name || s.id);
  if (names.join("\\n") !== Array.from(to.options, (o) => o.value).join("\\n")) {
    to.replaceChildren(...names.map((n) => { const o = el("option", "", n); o.value = n; return o; }));
    if (names.includes(chosen)) to.value = chosen;
  }
}

function renderThreads(threads, journal) {
  const box = document.getElementById("threads");
  box.replaceChildren();
  if (!threads.length) {
    const off = "the journal is off (RELAY_JOURNAL_DAYS=0): no messages to show";
    box.append(el("p", "empty", journal ? "no messages yet" : off));
  }
  for (const t of threads) {
    const card = el("div", "card thread");
    card.dataset.thread = t.thread;
    card.append(el("h3", "", "thread " + String(t.thread).slice(0, 8) + " · " + t.messages.length + " message(s)"));
    for (const m of t.messages) {
      const row = el("div", m.replyTo ? "msg reply" : "msg");
      row.dataset.id = m.id;
      row.dataset.state = m.state;
      const meta = el("div", "meta");
      meta.append(el("span", "who", who(m.from, m.fromName) + " → " + who(m.to, m.toName)),
                  el("span", "", clock(m.ts)), el("span", "badge " + m.state, m.state));
      const answer = el("button", "link", "reply");
      answer.type = "button";
      answer.addEventListener("click", () => startReply(m));
      meta.append(answer);
      row.append(meta, el("div", "body", m.body));
      if (m.detail) row.append(el("div", "detail", m.detail));
      card.append(row);
    }
    box.append(card);
  }
}

function startReply(m) {
  const to = document.getElementById("to");
  const target = m.from ? (m.fromName || m.from) : (m.toName || m.to);
  if (!Array.from(to.options, (o) => o.value).includes(target)) {
    const o = el("option", "", target); o.value = target; to.append(o);
  }
  to.value = target;
  replyTo = m.id;
  document.getElementById("replying").textContent = "replying to " + String(m.id).slice(0, 8);
  document.getElementById("text").focus();
}

function render(view) {
  document.getElementById("sender").textContent = view.sender;
  renderSessions(view.sessions);
  renderThreads(view.threads, view.journal);
  const count = view.threads.reduce((n, t) => n + t.messages.length, 0);
  document.getElementById("counts").textContent = view.sessions.length + " sessions · " + count + " messages";
}

async function send(event) {
  event.preventDefault();
  const result = document.getElementById("result");
  const text = document.getElementById("text");
  const payload = { to: document.getElementById("to").value, body: text.value };
  if (replyTo) payload.replyTo = replyTo;
  result.className = "";
  result.textContent = "sending…";
  try {
    const answer = await fetch("/api/send", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Relay-Token": token },
      body: JSON.stringify(payload),
      credentials: "omit",
    });
    const data = await answer.json();
    if (!answer.ok) throw new Error(data.error || answer.statusText);
    const note = data.note ? " — " + data.note : "";
    result.textContent = "queued " + data.id + " for " + who(data.to, data.toName) + note;
    text.value = "";
    replyTo = null;
    document.getElementById("replying").textContent = "";
  } catch (err) {
    result.className = "error";
    result.textContent = String(err.message || err);
  }
}

document.getElementById("compose").addEventListener("submit", send);
const stream = new EventSource("/api/events?token=" + encodeURIComponent(token));
const link = document.getElementById("link");
stream.addEventListener("view", (e) => {
  const view = JSON.parse(e.data);
  link.textContent = view.error ? "store error: " + view.error : "live";
  link.className = view.error ? "down" : "";
  render(view);
});
stream.addEventListener("error", () => { link.textContent = "reconnecting…"; link.className = "down"; });
</script>
</body>
</html>
"""


def page(nonce: str) -> bytes:
    """The page, its script and style marked with `nonce`."""
    return PAGE.replace("__NONCE__", nonce).encode("utf-8")
