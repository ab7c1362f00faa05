// A stdio upstream in "shared" mode: one child serves every session, so the gateway rewrites
// request ids on the way in (two clients' id 1 must not collide at the child) and restores each
// client's own id, number or string, on the way out. The child is sed answering any numeric id
// (lib/harness.mjs sed_stdio_server): it never sees a string id, so a string id coming back
// proves the rewrite.
import assert from 'node:assert/strict';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {read_metrics, sed_stdio_server, skip_without_gateway, start_gateway, stop_all} from './lib/harness.mjs';

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

function initialize(id) {
  return {jsonrpc: '2.0', id, method: 'initialize', params: {protocolVersion: '2025-06-18',
          capabilities: {}, clientInfo: {name: 'mcpgate-e2e-shared', version: '1.0.0'}}};
}

// A shared child that answers initialize, holds every tools/call, and says on stderr which
// request ids it was given and which it was asked to cancel.
const holding_server = ['python3', '-c', `
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    method = m.get('method')
    if method == 'initialize':
        print(json.dumps({'jsonrpc': '2.0', 'id': m['id'], 'result': {
            'protocolVersion': '2025-06-18', 'capabilities': {},
            'serverInfo': {'name': 'holding', 'version': '1'}}}), flush=True)
    elif method == 'tools/call':
        print('call', json.dumps(m['id']), file=sys.stderr, flush=True)
    elif method == 'notifications/cancelled':
        print('cancelled', json.dumps(m['params']['requestId']), file=sys.stderr, flush=True)
`];

describe('stdio upstream in shared mode', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-shared-'));
    const config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({upstream: {command: sed_stdio_server(), shared: true}}));
    gateway = await start_gateway({config, admin: true});
  });

  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('a cancellation reaches the shared child under the id the child knows', async () => {
    const config = path.join(dir, 'holding.json');
    await writeFile(config, JSON.stringify({upstream: {command: holding_server, shared: true}}));
    const holding = await start_gateway({config});
    const pending = [];
    try {
      const a = await post(holding.url, initialize(1));
      const b = await post(holding.url, initialize(1));
      assert.equal(a.status, 200, a.body);
      assert.equal(b.status, 200, b.body);
      const call_line = /^mcpgate: stdio: shared pid \d+: call (\S+)$/;
      const child_ids = [];
      for (const session of [a, b]) {
        const seen = holding.process.wait_for_line(call_line);
        const aborter = new AbortController();
        pending.push(aborter);
        fetch(holding.url, {
          method: 'POST',
          headers: {...headers, 'mcp-session-id': session.session_id},
          body: JSON.stringify({jsonrpc: '2.0', id: 7, method: 'tools/call',
                                params: {name: 'x', arguments: {}}}),
          signal: aborter.signal,
        }).catch(() => {});
        child_ids.push((await seen)[1]);
      }
      assert.notEqual(child_ids[0], child_ids[1], 'both id 7s reached the child as one id');
      const cancelled = holding.process.wait_for_line(/^mcpgate: stdio: shared pid \d+: cancelled (\S+)$/);
      const sent = await post(holding.url, {jsonrpc: '2.0', method: 'notifications/cancelled',
                                            params: {requestId: 7, reason: 'test'}}, a.session_id);
      assert.equal(sent.status, 202, sent.body);
      assert.equal((await cancelled)[1], child_ids[0], 'the cancellation named another request');
    } finally {
      for (const aborter of pending) aborter.abort();
      await stop_all(holding);
    }
  });

  test('two sessions share one child and each gets its own ids back', async () => {
    const a = await post(gateway.url, initialize(1));
    const b = await post(gateway.url, initialize(1));
    for (const opened of [a, b]) {
      assert.equal(opened.status, 200, opened.body);
      assert.equal(JSON.parse(opened.body).id, 1, opened.body);
    }
    assert.ok(a.session_id && b.session_id && a.session_id !== b.session_id);

    // The same ids from both sessions at once, a number and strings the child never sees.
    const calls = [];
    for (const [session, id] of [[a, 7], [b, 7], [a, 'call-a'], [b, 'call-b']]) {
      calls.push(post(gateway.url, {jsonrpc: '2.0', id, method: 'ping'}, session.session_id)
                     .then((reply) => ({id, reply})));
    }
    for (const {id, reply} of await Promise.all(calls)) {
      assert.equal(reply.status, 200, reply.body);
      assert.deepEqual(JSON.parse(reply.body).id, id, reply.body);
    }

    const metrics = await read_metrics(gateway.admin_url);
    assert.equal(metrics.get('mcpgate_stdio_processes'), 1);
    assert.equal(metrics.get('mcpgate_stdio_spawned_total'), 1);
    assert.equal(metrics.get('mcpgate_stdio_sessions'), 2);

    // Ending one session leaves the child to the other.
    const deleted = await fetch(gateway.url, {method: 'DELETE',
        headers: {'mcp-session-id': a.session_id}, signal: AbortSignal.timeout(10_000)});
    assert.equal(deleted.status, 200);
    const after_delete = await post(gateway.url, {jsonrpc: '2.0', id: 8, method: 'ping'}, b.session_id);
    assert.equal(JSON.parse(after_delete.body).id, 8, after_delete.body);
    const gone = await post(gateway.url, {jsonrpc: '2.0', id: 9, method: 'ping'}, a.session_id);
    assert.equal(gone.status, 404, gone.body);
    assert.equal(JSON.parse(gone.body).error.code, -32001, gone.body);
    const later = await read_metrics(gateway.admin_url);
    assert.equal(later.get('mcpgate_stdio_processes'), 1);
    assert.equal(later.get('mcpgate_stdio_spawned_total'), 1);
  });
});
