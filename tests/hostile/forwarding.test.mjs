// Forwarding rules (issue #12): what reaches the upstream, and what never may. Underscore
// spellings of checked headers, GET and DELETE bodies and tools/call without a tool name are
// refused; the gateway's credential is not passed on; Host and Origin are checked before
// authentication (DNS rebinding); and a call whose bytes reached an upstream that then failed
// is neither sent again nor given its count back.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {skip_without_gateway, start_counting_upstream, stop_all} from '../e2e/lib/harness.mjs';

import {exchange, jsonrpc_messages} from './lib/bypass_wire.mjs';
import {raw_behaviour, start_raw_upstream} from './lib/faults_raw_upstream.mjs';
import {protocol_version, start_two_identities} from './lib/two_identities.mjs';

// The bytes of a request as alice would send it, with `extra` header lines and `body`.
function raw_request(scene, {method = 'POST', extra = '', body = '', host, auth = true} = {}) {
  const lines = [
    `Host: ${host ?? `127.0.0.1:${scene.port}`}`,
    auth ? `Authorization: Bearer ${scene.keys.alice}` : null,
    'Accept: application/json, text/event-stream',
    body !== '' || method === 'POST' ? 'Content-Type: application/json' : null,
    `MCP-Protocol-Version: ${protocol_version}`,
  ].filter((line) => line !== null);
  const length = body !== '' || method === 'POST' ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : '';
  return `${method} /mcp HTTP/1.1\r\n${lines.join('\r\n')}\r\n${extra}${length}\r\n${body}`;
}

async function send(scene, options) {
  const {response, connection} = await exchange(scene.port, raw_request(scene, options));
  connection.destroy();
  return response;
}

function tools_call(id, params) { return JSON.stringify({jsonrpc: '2.0', id, method: 'tools/call', params}); }

describe('what the gateway forwards to an HTTP upstream', {skip: skip_without_gateway}, () => {
  let upstream = null;
  let scene = null;
  let session = null;

  before(async () => {
    upstream = await start_counting_upstream();
    scene = await start_two_identities('forwarding', {config: {upstream: upstream.url}});
    session = await scene.open_session('alice');
  });
  after(async () => { await stop_all(scene, upstream); });

  test('headers that read as a checked name with underscores for dashes get 400', async () => {
    const before_calls = await upstream.calls();
    for (const alias of ['Mcp_Session_Id: x', 'Mcp_Method: tools/call', 'Mcp_Name: clear_session',
                         'Mcp_Protocol_Version: 2025-06-18', 'MCP_SESSION_ID: x', 'Mcp-Session_Id: x']) {
      const response = await send(scene, {extra: `${alias}\r\n`, body: tools_call(1, {name: 'read_file'})});
      assert.equal(response.status, 400, `${alias}: ${response.head}`);
      assert.equal(JSON.parse(response.body).error.code, -32600, response.body);
    }
    assert.deepEqual(await upstream.calls(), before_calls);
  });

  test('a GET or DELETE with a body gets 400 and is not forwarded', async () => {
    const before_calls = await upstream.calls();
    for (const method of ['GET', 'DELETE']) {
      const response = await send(scene, {
        method,
        extra: `Mcp-Session-Id: ${session}\r\n`,
        body: tools_call(2, {name: 'clear_session'}),
      });
      assert.equal(response.status, 400, `${method}: ${response.head}`);
    }
    assert.deepEqual(await upstream.calls(), before_calls);
  });

  test('a tools/call without an object params holding a string name gets -32602', async () => {
    const before_calls = await upstream.calls();
    for (const [id, params] of [[3, undefined], [4, []], [5, {arguments: {}}], [6, ['read_file']]]) {
      const body = params === undefined ? JSON.stringify({jsonrpc: '2.0', id, method: 'tools/call'})
                                        : tools_call(id, params);
      const response = await send(scene, {extra: `Mcp-Session-Id: ${session}\r\n`, body});
      assert.equal(response.status, 200, response.head);
      const [message] = jsonrpc_messages(response.body);
      assert.equal(message.id, id, response.body);
      assert.equal(message.error?.code, -32602, response.body);
    }
    assert.deepEqual(await upstream.calls(), before_calls);
  });

  test('the gateway\'s credential never reaches the upstream', async () => {
    const before_calls = await upstream.calls();
    const reply = await scene.call('alice', 'auth-1', 'read_file', {path: '/a'}, {session});
    assert.equal(reply.status, 200, reply.body);
    const after_calls = await upstream.calls();
    assert.equal(after_calls.requests, before_calls.requests + 1);
    assert.equal(after_calls.authorization, 0, 'an Authorization header reached the upstream');
  });

  test('a foreign Host or Origin gets 403 before authentication', async () => {
    const before_calls = await upstream.calls();
    const init = JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize', params: {
      protocolVersion: protocol_version, capabilities: {}, clientInfo: {name: 'x', version: '1'}}});
    const rebound = await send(scene, {host: `evil.example.com:${scene.port}`, auth: false, body: init});
    assert.equal(rebound.status, 403, rebound.head);
    const foreign_origin = await send(scene, {
      auth: false, body: init, extra: 'Origin: http://evil.example.com\r\n'});
    assert.equal(foreign_origin.status, 403, foreign_origin.head);
    for (const host of [`localhost:${scene.port}`, `127.0.0.1:${scene.port}`, `[::1]:${scene.port}`]) {
      const local = await send(scene, {host, body: init, extra: `Origin: http://${host}\r\n`});
      assert.equal(local.status, 200, `${host}: ${local.head}`);
    }
    assert.equal((await upstream.calls()).requests, before_calls.requests + 3);
  });
});

describe('a call is never sent twice', {skip: skip_without_gateway}, () => {
  let upstream = null;
  let scene = null;

  before(async () => {
    upstream = await start_raw_upstream();
    scene = await start_two_identities('no-retry', {
      config: {upstream: upstream.url},
      policy: {write_file: {limits: [{counter: 'writes', window: 'hour', max: 2, scope: 'grant'}]}},
    });
  });
  after(async () => {
    await stop_all(scene);
    await upstream?.close();
  });

  test('an upstream that took the request and reset: 502 -32030, no retry, no count back',
       {timeout: 30_000}, async () => {
         upstream.behave(raw_behaviour.ok);
         const warm = await scene.call('alice', 'warm', 'read_file', {path: '/a'});
         assert.equal(warm.status, 200, warm.body);  // leaves a pooled connection
         upstream.behave(raw_behaviour.reset_before_response);
         const before_requests = upstream.requests();
         const failed = await scene.call('alice', 'w-1', 'write_file', {path: '/a'});
         assert.equal(failed.status, 502, failed.body);
         assert.equal(failed.messages[0].error.code, -32030, failed.body);
         assert.equal(upstream.requests(), before_requests + 1, 'the call was sent again');
         // It may have run: its count stays taken. One write is left of two.
         upstream.behave(raw_behaviour.ok);
         const second = await scene.call('alice', 'w-2', 'write_file', {path: '/b'});
         assert.equal(second.messages[0].result?.content?.[0]?.text, 'ok', second.body);
         const third = await scene.call('alice', 'w-3', 'write_file', {path: '/c'});
         assert.equal(third.messages[0].result?.structuredContent?.decision, 'rate_limited', third.body);
       });
});
