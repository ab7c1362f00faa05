// The scene of the ownership, bounds and forwarding tests (issue #12): a gateway with two
// identities that hold valid keys of their own, alice and bob, in one grant, in front of an
// upstream of the test's choosing (the counting SDK server, a stdio command, a scripted
// server), with an audit file and the admin listener. An attacker here is bob: authenticated,
// and after alice's things.
import assert from 'node:assert/strict';
import {createHash, randomBytes} from 'node:crypto';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {poll, start_gateway, stop_all} from '../../e2e/lib/harness.mjs';

export const protocol_version = '2025-06-18';

function sha256_hex(text) { return createHash('sha256').update(text).digest('hex'); }

// Starts a gateway whose config is `config` (upstream, limits, ...) plus two identities, alice
// and bob, in grant "agents" with `policy` (a JSON value, or null for none: every call allowed
// by a policy allowing all). Resolves with a scene; call stop().
export async function start_two_identities(name, {config = {}, policy = {}, shards = 1} = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `mcpgate-hostile-${name}-`));
  const keys = {alice: randomBytes(24).toString('base64url'), bob: randomBytes(24).toString('base64url')};
  await writeFile(path.join(dir, 'policy.json'), JSON.stringify(policy));
  const audit_file = path.join(dir, 'audit.log');
  const file = path.join(dir, 'gateway.json');
  await writeFile(file, JSON.stringify({
    shards,
    identities: Object.entries(keys).map(
        ([who, key]) => ({name: who, key_sha256: sha256_hex(key), grant: 'agents'})),
    grants: {agents: {policy: 'policy.json'}},
    audit: {path: audit_file, flush_interval_ms: 10, arguments: 'keys'},
    ...config,
  }));
  let gateway;
  try {
    gateway = await start_gateway({config: file, admin: true});
  } catch (error) {
    await rm(dir, {recursive: true, force: true});
    throw error;
  }
  return new two_identities(dir, keys, audit_file, gateway);
}

class two_identities {
  constructor(dir, keys, audit_file, gateway) {
    this.dir = dir;
    this.keys = keys;
    this.audit_file = audit_file;
    this.gateway = gateway;
    this.url = gateway.url;
    this.port = gateway.port;
  }

  async stop() {
    await stop_all(this.gateway);
    await rm(this.dir, {recursive: true, force: true});
  }

  // One HTTP request to the endpoint as `who` (alice or bob); resolves with
  // { status, headers, body, messages } where messages are the JSON-RPC messages of the body.
  async request(who, {method = 'POST', message, session, headers = {}, timeout_ms = 15_000} = {}) {
    const all = {'accept': 'application/json, text/event-stream', 'mcp-protocol-version': protocol_version, ...headers};
    if (who) all.authorization = `Bearer ${this.keys[who]}`;
    if (message !== undefined) all['content-type'] = 'application/json';
    if (session) all['mcp-session-id'] = session;
    const response = await fetch(this.url, {
      method,
      headers: all,
      body: message === undefined ? undefined : JSON.stringify(message),
      signal: AbortSignal.timeout(timeout_ms),
    });
    const body = await response.text();
    return {status: response.status, headers: response.headers, body, messages: messages_of(body)};
  }

  // initialize (and the initialized notification) as `who`: resolves with the session id.
  async open_session(who) {
    const reply = await this.request(who, {
      message: {jsonrpc: '2.0', id: 'init', method: 'initialize', params: {
        protocolVersion: protocol_version, capabilities: {},
        clientInfo: {name: 'hostile', version: '1'}}},
    });
    assert.equal(reply.status, 200, reply.body);
    const session = reply.headers.get('mcp-session-id');
    assert.ok(session, 'no Mcp-Session-Id');
    const done = await this.request(
        who, {message: {jsonrpc: '2.0', method: 'notifications/initialized'}, session});
    assert.equal(done.status, 202, done.body);
    return session;
  }

  call(who, id, tool, args = {}, options = {}) {
    return this.request(who, {
      message: {jsonrpc: '2.0', id, method: 'tools/call', params: {name: tool, arguments: args}},
      ...options,
    });
  }

  async audit() {
    let text;
    try {
      text = await readFile(this.audit_file, 'utf8');
    } catch (error) {
      if (error.code === 'ENOENT') return [];
      throw error;
    }
    return text.slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line));
  }

  // Waits for the audit line of JSON-RPC id `id` (and `decision`, when given).
  audit_line_for(id, decision) {
    return poll(async () => (await this.audit()).find(
                    (line) => line.id === id && (decision === undefined || line.decision === decision)),
                {what: `the audit line of ${JSON.stringify(id)}`});
  }
}

export function messages_of(body) {
  const trimmed = body.trim();
  if (trimmed === '') return [];
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const value = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  }
  const out = [];
  for (const block of body.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/)
                     .filter((line) => line.startsWith('data:'))
                     .map((line) => line.slice(5).trimStart())
                     .join('\n');
    if (data !== '') out.push(JSON.parse(data));
  }
  return out;
}

// Asserts a reply that says the session does not exist: 404 with JSON-RPC -32001.
export function assert_session_not_found(reply, what) {
  assert.equal(reply.status, 404, `${what}: ${reply.status} ${reply.body}`);
  const [message] = reply.messages;
  assert.equal(message?.error?.code, -32001, `${what}: ${reply.body}`);
}

// The gateway's resident set, in bytes, from /proc.
export async function rss_bytes(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)[1]) * 1024;
}
