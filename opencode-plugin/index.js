// session-relay's OpenCode plugin (docs/agents/opencode.md). OpenCode runs it inside its own
// process; every relay decision is made by `<clone>/launcher hook opencode`, which this file feeds
// one JSON event on stdin per OpenCode hook and whose answer it puts where the model reads it:
//
//   event session.created -> registers the session (mail found then is kept for its first prompt)
//   chat.message          -> mail before the prompt: one more text part of the user's message
//   tool.execute.before   -> a bus tool is about to run: tells relay which session calls it
//   tool.execute.after    -> urgent mail between tools: appended to the tool's output
//   event session.idle    -> end of turn: mail that came during the turn starts one more turn;
//                            then `launcher hook watch opencode` waits for mail while the session
//                            is idle and, when some comes, this plugin starts a turn with it.
//   config                -> relay's MCP server `bus` for this directory, its tools allowed.
//
// A failure here never stops a session: every call is caught and logged to stderr.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const LAUNCHER = join(ROOT, "launcher");
const TOOL = "opencode";
const BUS_PREFIX = "bus_";
// How relay recognises a turn it started itself (the auto-wake budget counts those): the opening
// of its nudge (relay.domain.policy.NUDGE_OPENING).
const RELAY_STARTED = "You have session-relay mail.";

// `opencode run` ends its process as soon as the session is idle: no turn can follow there, so mail
// that came during its turn is left queued for the session's next prompt instead of being taken.
const HEADLESS = process.argv.slice(1).find((word) => !word.startsWith("-") && !word.includes("/")) === "run";

function log(message) {
  process.stderr.write(`[session-relay/opencode] ${message}\n`);
}

// Run the launcher with `event` as JSON on stdin: {code, stdout, stderr}.
async function run(args, event, onStart) {
  const proc = Bun.spawn([LAUNCHER, ...args], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: process.env,
  });
  if (onStart) onStart(proc);
  proc.stdin.write(JSON.stringify(event));
  proc.stdin.end();
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

// The hook's answer: the text relay wants the model to read, or "" when there is none.
async function hook(name, sessionID, directory, extra = {}) {
  try {
    const done = await run(["hook", TOOL], { hook_event_name: name, session_id: sessionID, cwd: directory, ...extra });
    for (const line of done.stderr.split("\n")) if (line) process.stderr.write(line + "\n");
    const answer = done.stdout.trim() ? JSON.parse(done.stdout) : {};
    return typeof answer.text === "string" ? answer.text : "";
  } catch (err) {
    log(`${name}: ${err}`);
    return "";
  }
}

export const SessionRelay = async ({ client, directory }) => {
  const pending = new Map(); // session id -> mail found at its start, for its first prompt
  const continued = new Set(); // sessions whose current turn relay started (extended at most once)
  const watchers = new Map(); // session id -> the running `hook watch opencode` process
  const parents = new Map(); // session id -> true for a sub-agent's session (not served)

  function stopWatcher(id) {
    const proc = watchers.get(id);
    watchers.delete(id);
    if (proc) {
      try {
        proc.kill("SIGTERM");
      } catch {}
    }
  }

  async function startTurn(id, text, byRelay) {
    if (byRelay) continued.add(id);
    try {
      await client.session.promptAsync({ path: { id }, body: { parts: [{ type: "text", text }] } });
    } catch (err) {
      continued.delete(id);
      log(`cannot start a turn in ${id}: ${err}`);
    }
  }

  // While `id` is idle, relay's watcher waits for its mail; exit 2 hands the fenced mail over.
  function watch(id) {
    if (watchers.has(id)) return;
    const event = { hook_event_name: "session.idle", session_id: id, cwd: directory };
    let mine;
    run(["hook", "watch", TOOL], event, (proc) => watchers.set(id, (mine = proc)))
      .then(async (done) => {
        if (watchers.get(id) === mine) watchers.delete(id);
        if (done.code === 2 && done.stderr.trim()) await startTurn(id, done.stderr.trim(), true);
        else if (done.stderr.trim()) process.stderr.write(done.stderr);
      })
      .catch((err) => log(`watcher of ${id}: ${err}`));
  }

  const served = (id) => typeof id === "string" && !parents.get(id);

  return {
    config: async (cfg) => {
      cfg.mcp = cfg.mcp || {};
      cfg.mcp.bus = {
        type: "local",
        command: [LAUNCHER, "bus"],
        environment: { RELAY_PROJECT_DIR: directory, RELAY_AGENT: TOOL },
      };
      cfg.permission = cfg.permission || {};
      if (typeof cfg.permission === "object" && cfg.permission[`${BUS_PREFIX}*`] === undefined) {
        cfg.permission[`${BUS_PREFIX}*`] = "allow";
      }
    },

    event: async ({ event }) => {
      if (event.type === "session.created") {
        const info = event.properties.info;
        parents.set(info.id, Boolean(info.parentID));
        if (!served(info.id)) return;
        const text = await hook("session.created", info.id, info.directory || directory);
        if (text) pending.set(info.id, text);
      } else if (event.type === "session.idle") {
        const id = event.properties.sessionID;
        if (!served(id) || HEADLESS) return;
        const again = continued.has(id);
        continued.delete(id);
        const text = await hook("session.idle", id, directory, { stop_hook_active: again });
        if (text) await startTurn(id, text, true);
        else watch(id);
      } else if (event.type === "session.deleted") {
        const id = event.properties.info.id;
        stopWatcher(id);
        if (served(id)) await hook("session.deleted", id, directory);
      }
    },

    "chat.message": async (input, output) => {
      const id = input.sessionID;
      if (!served(id)) return;
      stopWatcher(id);
      const early = pending.get(id) || "";
      pending.delete(id);
      const typed = output.parts.filter((p) => p.type === "text" && !p.synthetic).map((p) => p.text);
      const prompt = continued.has(id) ? RELAY_STARTED : typed.join("\n");
      const now = await hook("chat.message", id, directory, { prompt });
      const text = [early, now].filter(Boolean).join("\n\n");
      if (!text) return;
      const like = output.parts[0] || {};
      output.parts.push({
        ...like,
        id: `prt_${Date.now().toString(16)}${Math.random().toString(36).slice(2, 14)}`,
        type: "text",
        text,
        synthetic: true,
      });
    },

    "tool.execute.before": async (input) => {
      if (served(input.sessionID) && input.tool.startsWith(BUS_PREFIX)) {
        await hook("tool.execute.before", input.sessionID, directory);
      }
    },

    "tool.execute.after": async (input, output) => {
      if (!served(input.sessionID)) return;
      const text = await hook("tool.execute.after", input.sessionID, directory);
      if (!text) return;
      // A built-in tool's result is `output`; an MCP tool's (the bus's) is a list of `content` parts.
      if (Array.isArray(output.content)) output.content.push({ type: "text", text });
      else output.output = `${output.output ?? ""}\n\n${text}`;
    },
  };
};
