// The stdio bridge's limits, on a sed child (lib/harness.mjs sed_stdio_server): initialize
// past max_processes gets 503 with JSON-RPC -32034 until a session ends, and a session quiet
// for session_idle_timeout_ms is ended (its child too) and then answers 404 / -32001, as is one
// whose client leaves mid-call when end_session_on_disconnect is set.
import assert from 'node:assert/strict';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, read_metrics, sed_stdio_server, skip_without_gateway, start_gateway, stop_all} from './lib/harness.mjs';

const headers = {'content-type': 'application/json', 'accept': 'application/json, text/event-stream'};

async function post(url, message, session_id) {
  const response = await fetch(url, {
    method: 'POST',
    headers: session_id ? {...headers, 'mcp-session-id': session_id} : headers,
    body: JSON.stringify(message),
    signal: AbortSignal.timeout(10_000),
  });
  return {status: response.status, session_id: response.headers.get('mcp-session-id'),
          body: await response.text()};
}

const initialize = {jsonrpc: '2.0', id: 1, method: 'initialize', params: {
  protocolVersion: '2025-06-18', capabilities: {},
  clientInfo: {name: 'mcpgate-e2e-stdio-limits', version: '1.0.0'}}};

async function start(dir, name, upstream) {
  const config = path.join(dir, `${name}.json`);
  await writeFile(config, JSON.stringify({upstream: {command: sed_stdio_server(), ...upstream}}));
  return start_gateway({config, admin: true});
}

describe('stdio upstream limits', {skip: skip_without_gateway}, () => {
  let dir = null;
  const gateways = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-limits-'));
  });

  after(async () => {
    await stop_all(...gateways);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('initialize past max_processes gets 503 and -32034 until a session ends', async () => {
    const gateway = await start(dir, 'cap', {max_processes: 2});
    gateways.push(gateway);
    const first = await post(gateway.url, initialize);
    const second = await post(gateway.url, initialize);
    assert.equal(first.status, 200, first.body);
    assert.equal(second.status, 200, second.body);
    const refused = await post(gateway.url, initialize);
    assert.equal(refused.status, 503, refused.body);
    const error = JSON.parse(refused.body).error;
    assert.equal(error.code, -32034, refused.body);
    assert.match(error.message, /2 processes already running \(max_processes\)/);
    const metrics = await read_metrics(gateway.admin_url);
    assert.equal(metrics.get('mcpgate_stdio_refused_total{reason="max_processes"}'), 1);

    const deleted = await fetch(gateway.url, {method: 'DELETE',
        headers: {'mcp-session-id': first.session_id}, signal: AbortSignal.timeout(10_000)});
    assert.equal(deleted.status, 200);
    // The slot frees once the child has been reaped.
    const third = await poll(async () => {
      const reply = await post(gateway.url, initialize);
      return reply.status === 200 ? reply : null;
    }, {what: 'an initialize accepted after a session ended'});
    assert.ok(third.session_id);
  });

  test('with end_session_on_disconnect, a client leaving mid-call ends its session', async () => {
    // A child that answers initialize, says on stderr when the next message reaches it, and
    // never answers anything else.
    const init_result = JSON.stringify({jsonrpc: '2.0', id: 1, result: {
      protocolVersion: '2025-06-18', capabilities: {}, serverInfo: {name: 'mute', version: '1'}}});
    const config = path.join(dir, 'disconnect.json');
    await writeFile(config, JSON.stringify({upstream: {
      command: ['sh', '-c',
                `read line; echo '${init_result}'; read line; echo got-call >&2; exec cat >/dev/null`],
      end_session_on_disconnect: true}}));
    const gateway = await start_gateway({config, admin: true});
    gateways.push(gateway);
    const opened = await post(gateway.url, initialize);
    assert.equal(opened.status, 200, opened.body);
    assert.equal((await read_metrics(gateway.admin_url)).get('mcpgate_stdio_processes'), 1);

    const reached = gateway.process.wait_for_line(/^mcpgate: stdio: session \w+ pid \d+: got-call$/);
    const leaving = new AbortController();
    const call = fetch(gateway.url, {
      method: 'POST',
      headers: {...headers, 'mcp-session-id': opened.session_id},
      body: JSON.stringify({jsonrpc: '2.0', id: 2, method: 'tools/call',
                            params: {name: 'x', arguments: {}}}),
      signal: leaving.signal,
    }).catch((error) => error);
    await reached;  // the call is in the child's hands
    leaving.abort();
    await call;
    await poll(async () => {
      const metrics = await read_metrics(gateway.admin_url);
      return metrics.get('mcpgate_stdio_sessions') === 0 &&
          metrics.get('mcpgate_stdio_processes') === 0;
    }, {what: 'the session and its child to end after the client left'});
    const late = await post(gateway.url, {jsonrpc: '2.0', id: 3, method: 'ping'}, opened.session_id);
    assert.equal(late.status, 404, late.body);
  });

  test('a session quiet for session_idle_timeout_ms is ended with its child', async () => {
    const gateway = await start(dir, 'idle', {session_idle_timeout_ms: 300});
    gateways.push(gateway);
    const opened = await post(gateway.url, initialize);
    assert.equal(opened.status, 200, opened.body);
    await poll(async () => {
      const metrics = await read_metrics(gateway.admin_url);
      return metrics.get('mcpgate_stdio_sessions') === 0 &&
          metrics.get('mcpgate_stdio_processes') === 0;
    }, {what: 'the idle session and its child to end'});
    const late = await post(gateway.url, {jsonrpc: '2.0', id: 2, method: 'ping'}, opened.session_id);
    assert.equal(late.status, 404, late.body);
    assert.equal(JSON.parse(late.body).error.code, -32001, late.body);
  });
});
