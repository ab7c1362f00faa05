// The scene of every bypass test file: the counting upstream (tests/e2e/lib/counting_server.mjs)
// behind one gateway configured with the seed policy for two API keys (grants "ops" and
// "readers", as in tests/e2e/policy.test.mjs), an audit file, and whatever limits the file
// needs; plus what each case asserts with: the exact request bytes, the audit lines a case
// caused, the upstream's counts, and a normal allowed call.
import assert from 'node:assert/strict';
import {createHash, randomBytes} from 'node:crypto';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  poll,
  read_metrics,
  start_counting_upstream,
  start_gateway,
  stop_all
} from '../../e2e/lib/harness.mjs';

import {exchange, jsonrpc_messages, raw_connection} from './bypass_wire.mjs';

// The seed policy of grant "ops", verbatim from the issue.
export const seed_policy = `{
  "clear_session": { "deny_if": [ { "conditions": [], "on_deny": "Blocked by default. Requires approval." } ] },
  "write_file": { "limits": [ { "counter": "write_file_per_hour", "window": "hour", "max": 30, "scope": "grant" } ] },
  "list_directory": { "limits": [ { "counter": "list_directory_per_minute", "window": "minute", "max": 60, "scope": "grant" } ] }
}
`;

// Grant "readers": run_python_code and write_file are hidden (denied at call time).
const readers_policy = JSON.stringify({
  version: '1',
  default: 'allow',
  hide: ['write_file', 'run_python_code'],
});

export const approval_text = '[POLICY DENIED] Blocked by default. Requires approval.';
export const protocol_version = '2025-06-18';

function sha256_hex(text) { return createHash('sha256').update(text).digest('hex'); }

// The parsed lines of an audit file; a partial last line (being written) is left out.
export async function read_audit(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line));
}

// Starts the upstream and a gateway in front of it. `limits` is the config's limits object;
// `shards` defaults to 1 so that per-shard limits apply to every connection a test opens.
// Resolves with a scene; call stop() in after().
export async function start_scene(name, {limits = {}, shards = 1} = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `mcpgate-hostile-${name}-`));
  const keys = {
    ops: randomBytes(24).toString('base64url'),
    reader: randomBytes(24).toString('base64url')
  };
  await writeFile(path.join(dir, 'ops.json'), seed_policy);
  await writeFile(path.join(dir, 'readers.json'), readers_policy);
  const audit_file = path.join(dir, 'audit.log');
  let upstream = null;
  let gateway = null;
  try {
    upstream = await start_counting_upstream();
    const config = path.join(dir, 'gateway.json');
    await writeFile(
        config,
        JSON.stringify(
            {
              upstream: upstream.url,
              shards,
              identities: [
                {name: 'alice', key_sha256: sha256_hex(keys.ops), grant: 'ops'},
                {name: 'ci-bot', key_sha256: sha256_hex(keys.reader), grant: 'readers'},
              ],
              grants: {ops: {policy: 'ops.json'}, readers: {policy: 'readers.json'}},
              audit: {path: audit_file, flush_interval_ms: 10, arguments: 'keys'},
              limits,
            },
            null, 2));
    gateway = await start_gateway({config, admin: true});
  } catch (error) {
    await stop_all(gateway, upstream);
    await rm(dir, {recursive: true, force: true});
    throw error;
  }
  return new scene(dir, keys, audit_file, upstream, gateway);
}

class scene {
  constructor(dir, keys, audit_file, upstream, gateway) {
    this.dir_ = dir;
    this.keys = keys;
    this.audit_file = audit_file;
    this.upstream = upstream;
    this.gateway = gateway;
    this.port = gateway.port;
    this.session_ = null;
    this.next_id_ = 1;
  }

  async stop() {
    await stop_all(this.gateway, this.upstream);
    await rm(this.dir_, {recursive: true, force: true});
  }

  // A request id no other case uses, so the audit line can be found by it.
  unique_id(prefix = 'case') { return `${prefix}-${this.next_id_++}`; }

  // The bytes of a POST to the endpoint with the headers a well-behaved client sends (the ops
  // key, JSON content type, both Accept types, the protocol version and, once a session is
  // open, its id), `headers` added after them and `body` (a string, sent as is, or a value,
  // serialised). `omit` names default headers to leave out (lower case).
  post(body, {headers = {}, omit = [], key = this.keys.ops, path: endpoint = '/mcp'} = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const defaults = {
      'host': `127.0.0.1:${this.port}`,
      'authorization': `Bearer ${key}`,
      'content-type': 'application/json',
      'accept': 'application/json, text/event-stream',
      'mcp-protocol-version': protocol_version,
    };
    if (this.session_) defaults['mcp-session-id'] = this.session_;
    const lines = [];
    for (const [name, value] of Object.entries(defaults)) {
      if (!omit.includes(name) && !Object.keys(headers).some((h) => h.toLowerCase() === name)) {
        lines.push(`${name}: ${value}`);
      }
    }
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    lines.push(`content-length: ${Buffer.byteLength(text)}`);
    return `POST ${endpoint} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${text}`;
  }

  // The header lines (each ending in CRLF) that authenticate as `key` and name the session;
  // for cases that write their own request line and framing.
  auth_lines(key = this.keys.ops) {
    let lines = `Host: 127.0.0.1:${this.port}\r\nAuthorization: Bearer ${key}\r\n` +
        `MCP-Protocol-Version: ${protocol_version}\r\n`;
    if (this.session_) lines += `Mcp-Session-Id: ${this.session_}\r\n`;
    return lines;
  }

  // Opens an MCP session with the upstream through the gateway (initialize, then the
  // initialized notification); later post()s carry its id.
  async open_session() {
    const {response, connection} = await exchange(this.port, this.post({
      jsonrpc: '2.0',
      id: this.unique_id('init'),
      method: 'initialize',
      params: {
        protocolVersion: protocol_version,
        capabilities: {},
        clientInfo: {name: 'hostile', version: '1'}
      },
    }));
    connection.destroy();
    assert.equal(response.status, 200, response.head);
    this.session_ = response.headers['mcp-session-id'];
    assert.ok(this.session_, `no Mcp-Session-Id in ${response.head}`);
    const initialized =
        await exchange(this.port, this.post({jsonrpc: '2.0', method: 'notifications/initialized'}));
    initialized.connection.destroy();
    assert.equal(initialized.response.status, 202, initialized.response.head);
  }

  // A tools/call message.
  tools_call(id, name, args = {}) {
    return {jsonrpc: '2.0', id, method: 'tools/call', params: {name, arguments: args}};
  }

  // An allowed read_file call through the gateway, on `connection` or a fresh one: asserts the
  // upstream's answer arrived and returns it.
  async normal_call(connection = null) {
    const id = this.unique_id('normal');
    const bytes = this.post(this.tools_call(id, 'read_file', {path: `/srv/${id}`}));
    let response;
    if (connection) {
      await connection.write(bytes);
      response = await connection.next_response();
    } else {
      const result = await exchange(this.port, bytes);
      result.connection.destroy();
      response = result.response;
    }
    assert.equal(response.status, 200, `${response.head}\n${response.body}`);
    const message = jsonrpc_messages(response.body).find((m) => m.id === id);
    assert.ok(message, `no answer to ${id} in ${response.body}`);
    assert.deepEqual(
        message.result?.content, [{type: 'text', text: `contents of /srv/${id}`}], response.body);
    return message;
  }

  // The upstream's counts now (GET /calls).
  calls() { return this.upstream.calls(); }

  // The number of audit lines written so far: a mark to read a case's lines from. A line is
  // handed to the audit writer before the client has its reply, but written up to a flush
  // interval later; so the mark waits until the writers hold nothing (the admin listener's
  // mcpgate_audit_pending_bytes), else an earlier case's late line would count as this one's.
  async audit_mark() {
    await poll(async () => {
      const metrics = await read_metrics(this.gateway.admin_url);
      return metrics.get('mcpgate_audit_pending_bytes') === 0;
    }, {what: 'the audit writers to have written every line they were given'});
    return (await read_audit(this.audit_file)).length;
  }

  // Waits until at least `count` lines follow `mark` and returns exactly those after it.
  async audit_since(mark, count, {timeout_ms = 10_000} = {}) {
    return poll(async () => {
      const lines = await read_audit(this.audit_file);
      return lines.length >= mark + count ? lines.slice(mark) : null;
    }, {what: `${count} audit line(s) after line ${mark} of ${this.audit_file}`, timeout_ms});
  }

  // Waits for the lines a case caused after `mark` and asserts there are exactly `count` of
  // them (the gateway writes the lines of one exchange together); returns them.
  async audit_lines_of_case(mark, count = 1) {
    const lines = await this.audit_since(mark, count);
    assert.equal(lines.length, count, `audit lines after ${mark}: ${JSON.stringify(lines)}`);
    return lines;
  }

  // Waits for the audit line of the message with JSON-RPC `id` and returns it.
  audit_line_for(id, {timeout_ms = 10_000} = {}) {
    return poll(async () => (await read_audit(this.audit_file)).find((line) => line.id === id), {
      what: `the audit line of id ${JSON.stringify(id)} in ${this.audit_file}`,
      timeout_ms,
    });
  }

  open_connection() { return raw_connection.open(this.port); }
}

// Asserts that `response` is a gateway error reply: HTTP `status`, and when `code` is given a
// JSON-RPC 2.0 error body with that code and `id` (null unless given).
export function assert_error_reply(response, status, code, id = null) {
  const where = `${response.head}\n\n${response.body}`;
  assert.equal(response.status, status, where);
  if (code === undefined) return null;
  assert.match(response.headers['content-type'] ?? '', /^application\/json/, where);
  const message = JSON.parse(response.body);
  assert.equal(message.jsonrpc, '2.0', where);
  assert.equal(message.error?.code, code, where);
  assert.deepEqual(message.id, id, where);
  return message;
}

// Asserts that the upstream saw nothing new since `before` (a calls() snapshot): no HTTP
// request, no method, no tool call; and that clear_session, the tool the seed policy always
// denies, never reached it at all.
export async function assert_upstream_untouched(scene_value, before) {
  const now = await scene_value.calls();
  assert.deepEqual(now, before, 'the upstream saw a request it must not have');
  assert.equal(now.tools.clear_session ?? 0, 0, 'clear_session reached the upstream');
}
