#include "net/approval/admin_routes.h"

namespace mcpgate::net {

// One document, no build step: the list is kept live from /approvals/events (read with fetch,
// so the admin token can go in a header, which EventSource cannot send), and each row's
// buttons post the decision. Everything is reachable by keyboard; the status line is a live
// region, so a screen reader hears calls arrive and leave.
std::string_view approvals_page() {
  return R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcpgate: calls waiting for approval</title>
<style>
  :root { color-scheme: light dark; --accent: #2457c5; --deny: #b42318; --muted: #667085; }
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem; }
  h1 { font-size: 1.35rem; margin: .2rem 0 1rem; }
  fieldset { border: 1px solid #d0d5dd; border-radius: 6px; margin: 0 0 1rem; padding: .6rem 1rem; }
  legend { font-weight: 600; }
  label { margin-right: .4rem; }
  fieldset input, fieldset button { margin-right: 1.2rem; }
  input, select, button { font: inherit; }
  input[type=text], input[type=password] { padding: .25rem .4rem; }
  button { border: 1px solid transparent; border-radius: 5px; cursor: pointer; padding: .3rem .8rem; }
  button.approve { background: var(--accent); color: white; }
  button.deny { background: var(--deny); color: white; }
  button:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid #f79009; outline-offset: 2px; }
  table { border-collapse: collapse; width: 100%; }
  caption { text-align: left; color: var(--muted); padding-bottom: .4rem; }
  th, td { border-bottom: 1px solid #eaecf0; padding: .5rem; text-align: left; vertical-align: top; }
  th { font-size: .85rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
  pre { margin: 0; max-width: 28rem; overflow: auto; white-space: pre-wrap; word-break: break-all; font-size: .85rem; }
  .tool { font-weight: 600; }
  .meta { color: var(--muted); font-size: .85rem; }
  .late { color: var(--deny); font-weight: 600; }
  .decide { display: grid; gap: .35rem; min-width: 15rem; }
  .buttons { display: flex; gap: .5rem; }
  #status { min-height: 1.5rem; margin: .5rem 0; }
  #empty { color: var(--muted); padding: 1rem 0; }
</style>
</head>
<body>
<main>
<h1>Calls waiting for approval</h1>
<fieldset>
  <legend>Approver</legend>
  <label for="by">Your name</label>
  <input id="by" type="text" autocomplete="username" required>
  <label for="token">Admin token</label>
  <input id="token" type="password" autocomplete="current-password" placeholder="only if the listener has one">
  <button id="connect" type="button">Connect</button>
</fieldset>
<p id="status" role="status" aria-live="polite"></p>
<table id="calls" aria-describedby="status">
  <caption>Each row is a tools/call held by an approve_if rule. Approve to run it once (or for a while, for the same arguments); deny to refuse it.</caption>
  <thead><tr><th scope="col">Tool</th><th scope="col">Caller</th><th scope="col">Arguments</th><th scope="col">Waiting</th><th scope="col">Decision</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<p id="empty">Nothing is waiting.</p>
</main>
<script>
"use strict";
const rows = document.getElementById("rows");
const statusLine = document.getElementById("status");
const byInput = document.getElementById("by");
const tokenInput = document.getElementById("token");
const pending = new Map();  // id -> {call, row}
let stream = null;

byInput.value = localStorage.getItem("mcpgate.approver") || "";
tokenInput.value = sessionStorage.getItem("mcpgate.token") || "";
byInput.addEventListener("change", () => localStorage.setItem("mcpgate.approver", byInput.value));

function say(text) { statusLine.textContent = text; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (tokenInput.value) h["Authorization"] = "Bearer " + tokenInput.value;
  return h;
}
function seconds(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
}
function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text !== undefined) td.textContent = text;
  tr.appendChild(td);
  return td;
}
function refreshEmpty() { document.getElementById("empty").hidden = pending.size > 0; }

function addRow(call) {
  if (pending.has(call.id)) return;
  const tr = document.createElement("tr");
  tr.dataset.id = call.id;
  const tool = cell(tr);
  const name = document.createElement("div");
  name.className = "tool";
  name.textContent = call.tool;
  const where = document.createElement("div");
  where.className = "meta";
  where.textContent = "server " + call.server + " \u00b7 " + call.rule;
  tool.append(name, where);
  if (call.message) {
    const why = document.createElement("div");
    why.textContent = call.message;
    tool.appendChild(why);
  }
  const caller = cell(tr);
  caller.textContent = call.identity || "(anonymous)";
  const session = document.createElement("div");
  session.className = "meta";
  session.textContent = call.session ? "session " + call.session.slice(0, 12) : "no session";
  caller.appendChild(session);
  const args = cell(tr);
  const pre = document.createElement("pre");
  pre.textContent = call.arguments === null ? "(not shown by audit.arguments)" : JSON.stringify(call.arguments, null, 2);
  args.appendChild(pre);
  const digest = document.createElement("div");
  digest.className = "meta";
  digest.textContent = "sha256 " + call.arguments_sha256.slice(0, 16) + "\u2026";
  args.appendChild(digest);
  const waiting = cell(tr, "", "waiting");
  const decide = cell(tr);
  const box = document.createElement("div");
  box.className = "decide";
  const reasonId = "reason-" + call.id, forId = "for-" + call.id;
  box.innerHTML =
    '<div><label for="' + reasonId + '">Reason</label><input type="text" id="' + reasonId + '"></div>' +
    '<div><label for="' + forId + '">Approve for</label><select id="' + forId + '">' +
    '<option value="0">this call only</option><option value="900000">15 minutes</option>' +
    '<option value="3600000">1 hour</option><option value="28800000">8 hours</option></select></div>' +
    '<div class="buttons"><button type="button" class="approve">Approve</button>' +
    '<button type="button" class="deny">Deny</button></div>';
  const [approve, deny] = box.querySelectorAll("button");
  approve.setAttribute("aria-label", "Approve " + call.tool + " for " + (call.identity || "anonymous"));
  deny.setAttribute("aria-label", "Deny " + call.tool + " for " + (call.identity || "anonymous"));
  approve.addEventListener("click", () => decideCall(call, "approve", box));
  deny.addEventListener("click", () => decideCall(call, "deny", box));
  decide.appendChild(box);
  rows.appendChild(tr);
  pending.set(call.id, {call, row: tr});
  tick();
  refreshEmpty();
}

function removeRow(id) {
  const entry = pending.get(id);
  if (!entry) return;
  entry.row.remove();
  pending.delete(id);
  refreshEmpty();
}

async function decideCall(call, action, box) {
  if (!byInput.value.trim()) {
    say("Enter your name first: every decision is audited with who made it.");
    byInput.focus();
    return;
  }
  const body = {by: byInput.value.trim()};
  const reason = box.querySelector("input").value.trim();
  if (reason) body.reason = reason;
  const forMs = Number(box.querySelector("select").value);
  if (action === "approve" && forMs > 0) body.for_ms = forMs;
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  try {
    const reply = await fetch("/approvals/" + encodeURIComponent(call.id) + "/" + action, {
      method: "POST", headers: headers({"Content-Type": "application/json"}), body: JSON.stringify(body)});
    const answer = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error(answer.error || ("HTTP " + reply.status));
    say((action === "approve" ? "Approved " : "Denied ") + call.tool + " for " + (call.identity || "anonymous") + ".");
    removeRow(call.id);
  } catch (e) {
    say("Could not " + action + " " + call.tool + ": " + e.message);
    for (const b of box.querySelectorAll("button")) b.disabled = false;
  }
}

function tick() {
  const now = Date.now();
  for (const {call, row} of pending.values()) {
    const cellEl = row.querySelector(".waiting");
    const left = call.expires_at_ms - now;
    cellEl.textContent = seconds(now - call.held_at_ms) + " (" + (left > 0 ? seconds(left) + " left" : "expiring") + ")";
    cellEl.classList.toggle("late", left < 60000);
  }
}
setInterval(tick, 1000);

function onEvent(kind, data) {
  if (kind === "snapshot") {
    for (const id of [...pending.keys()]) removeRow(id);
    for (const call of data) addRow(call);
    say(pending.size ? pending.size + " call(s) waiting." : "Connected. Nothing is waiting.");
  } else if (kind === "held") {
    addRow(data);
    say("New call waiting: " + data.tool + " for " + (data.identity || "anonymous") + ".");
  } else if (pending.has(data.id)) {
    removeRow(data.id);
    const how = {approved: "approved", denied: "denied", timed_out: "timed out", cancelled: "cancelled by its client"}[kind] || kind;
    say(data.tool + " for " + (data.identity || "anonymous") + " was " + how + (data.by ? " by " + data.by : "") + ".");
  }
}

async function connect() {
  sessionStorage.setItem("mcpgate.token", tokenInput.value);
  if (stream) stream.abort();
  stream = new AbortController();
  say("Connecting\u2026");
  try {
    const reply = await fetch("/approvals/events", {headers: headers(), signal: stream.signal});
    if (reply.status === 401) { say("The admin listener needs its token."); tokenInput.focus(); return; }
    if (!reply.ok) { say("Could not connect: HTTP " + reply.status); return; }
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) onEvent(kind, JSON.parse(data));
      }
    }
    say("The gateway closed the stream; reconnecting\u2026");
  } catch (e) {
    if (e.name === "AbortError") return;
    say("Lost the stream (" + e.message + "); reconnecting\u2026");
  }
  setTimeout(connect, 2000);
}
document.getElementById("connect").addEventListener("click", connect);
refreshEmpty();
connect();
</script>
</body>
</html>
)page";
}

}  // namespace mcpgate::net
