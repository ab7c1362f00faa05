// Ownership (issue #12): whatever a client creates belongs to its identity. Bob holds a valid
// key of his own and alice's session id; he may not use her session, read her stream or end it,
// over an HTTP upstream or a stdio one. Session-scoped limits count only sessions the gateway
// minted. In one stdio session two requests in flight cannot share an id, and one identity
// cannot take every stdio child.
import assert from 'node:assert/strict';
import {mkdtemp, rm} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, read_metrics, skip_without_gateway, source_root, start_counting_upstream, stop_all} from '../e2e/lib/harness.mjs';

import {raw_connection} from './lib/bypass_wire.mjs';
import {assert_session_not_found, protocol_version, start_two_identities} from './lib/two_identities.mjs';

const interpreter = path.join(source_root, 'tests', 'fixtures', 'python_interpreter_server.py');

// Alice's session, and what bob tries with it: a call, its event stream, its end.
async function assert_bob_cannot_touch(scene, session, call_tool, call_args) {
  const posted = await scene.call('bob', 'bob-1', call_tool, call_args, {session});
  assert_session_not_found(posted, 'bob POSTing in alice\'s session');
  const stream = await scene.request('bob', {method: 'GET', session, timeout_ms: 5_000});
  assert_session_not_found(stream, 'bob opening alice\'s GET stream');
  const ended = await scene.request('bob', {method: 'DELETE', session});
  assert_session_not_found(ended, 'bob DELETing alice\'s session');
  // An id never issued fares the same, and so does alice's id with one byte changed.
  const invented = await scene.call('bob', 'bob-2', call_tool, call_args, {session: 'invented'});
  assert_session_not_found(invented, 'an invented session id');
  const altered = session.slice(0, -1) + (session.endsWith('A') ? 'B' : 'A');
  assert_session_not_found(
      await scene.call('alice', 'alice-x', call_tool, call_args, {session: altered}),
      'an altered token');
  // Refused at the head, before the body is read: one audit line each, naming who and why.
  const lines = await poll(async () => {
    const refused = (await scene.audit()).filter((l) => l.identity === 'bob' && l.rule === 'session');
    return refused.length >= 4 ? refused : null;
  }, {what: 'four audit lines of bob\'s refused requests'});
  for (const line of lines) {
    assert.equal(line.decision, 'invalid', JSON.stringify(line));
    assert.equal(line.upstream_status, undefined, JSON.stringify(line));
  }
}

// A session of alice's, once a child slot of hers is free (the children of sessions ended
// before are freed once reaped).
function alice_session(scene) {
  return poll(() => scene.open_session('alice').catch(() => null),
              {what: 'a session of alice\'s to start'});
}

describe('sessions over an HTTP upstream belong to their creator', {skip: skip_without_gateway}, () => {
  let upstream = null;
  let scene = null;

  before(async () => {
    upstream = await start_counting_upstream();
    scene = await start_two_identities('ownership-http', {
      config: {upstream: upstream.url},
      policy: {read_file: {limits: [{counter: 'reads', window: 'hour', max: 2, scope: 'session'}]}},
    });
  });
  after(async () => { await stop_all(scene, upstream); });

  test('bob cannot call, stream from or end alice\'s session', {timeout: 30_000}, async () => {
    const session = await scene.open_session('alice');
    const before_calls = await upstream.calls();
    await assert_bob_cannot_touch(scene, session, 'read_file', {path: '/x'});
    assert.deepEqual(await upstream.calls(), before_calls, 'bob\'s requests reached the upstream');
    // Alice's session is untouched.
    const mine = await scene.call('alice', 'alice-1', 'read_file', {path: '/mine'}, {session});
    assert.equal(mine.status, 200, mine.body);
    assert.deepEqual(mine.messages[0].result.content, [{type: 'text', text: 'contents of /mine'}]);
    const line = await scene.audit_line_for('alice-1');
    // The audit line names the upstream's session, the part of the token before its seal.
    assert.equal(line.session, session.slice(0, session.lastIndexOf('.')), JSON.stringify(line));
  });

  test('one keep-alive connection: each request is whoever its own key names, never the last ' +
           'one that authenticated', {timeout: 30_000}, async () => {
         // An initialize with `authorization` (null: none) on `connection`, and its response.
         const post = (connection, id, authorization) => {
           const body = JSON.stringify({jsonrpc: '2.0', id, method: 'initialize', params: {
             protocolVersion: protocol_version, capabilities: {},
             clientInfo: {name: 'auth-cache', version: '1'}}});
           connection.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${scene.port}\r\n` +
                            (authorization === null ? '' : `Authorization: ${authorization}\r\n`) +
                            'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
                            `MCP-Protocol-Version: ${protocol_version}\r\n` +
                            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
           return connection.next_response();
         };
         const alice = `Bearer ${scene.keys.alice}`;
         // A wrong key of the same length, differing in its last character only.
         const forged = alice.slice(0, -1) + (alice.endsWith('A') ? 'B' : 'A');
         const first = await raw_connection.open(scene.port);
         assert.equal((await post(first, 'auth-1', alice)).status, 200);
         assert.equal((await post(first, 'auth-2', `Bearer ${scene.keys.bob}`)).status, 200);
         assert.equal((await post(first, 'auth-3', alice)).status, 200);
         const refused = await post(first, 'auth-4', forged);
         assert.equal(refused.status, 401, refused.body);
         first.destroy();
         const second = await raw_connection.open(scene.port);
         assert.equal((await post(second, 'auth-5', alice)).status, 200);
         assert.equal((await post(second, 'auth-6', null)).status, 401, 'no header after a good one');
         second.destroy();
         const who = {};
         for (const id of ['auth-1', 'auth-2', 'auth-3', 'auth-5'])
           who[id] = (await scene.audit_line_for(id)).identity;
         assert.deepEqual(who, {'auth-1': 'alice', 'auth-2': 'bob', 'auth-3': 'alice', 'auth-5': 'alice'});
       });

  test('a session limit counts per minted session; invented ids mint nothing', {timeout: 30_000},
       async () => {
         const session = await scene.open_session('alice');
         for (const id of ['s-1', 's-2']) {
           const ok = await scene.call('alice', id, 'read_file', {path: '/a'}, {session});
           assert.equal(ok.messages[0].result?.isError, undefined, ok.body);
         }
         const over = await scene.call('alice', 's-3', 'read_file', {path: '/a'}, {session});
         assert.equal(over.messages[0].result?.structuredContent?.decision, 'rate_limited', over.body);
         // Rotating invented ids: not a single call gets through.
         const before_calls = await upstream.calls();
         for (let i = 0; i < 10; ++i) {
           const reply = await scene.call('alice', `r-${i}`, 'read_file', {path: '/a'},
                                          {session: `rotating-${i}`});
           assert_session_not_found(reply, `invented id ${i}`);
         }
         assert.deepEqual(await upstream.calls(), before_calls);
       });
});

describe('sessions of a stdio upstream belong to their creator', {skip: skip_without_gateway}, () => {
  let scene = null;
  let workdir = null;

  before(async () => {
    workdir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-hostile-repl-'));
    scene = await start_two_identities('ownership-stdio', {
      config: {upstream: {command: ['python3', interpreter, '--dir', workdir], max_processes: 4}},
      policy: {write_file: {limits: [{counter: 'writes', window: 'hour', max: 3, scope: 'grant'}]}},
    });
  });
  after(async () => {
    await stop_all(scene);
    if (workdir) await rm(workdir, {recursive: true, force: true});
  });

  test('bob cannot run code in, stream from or end alice\'s REPL', {timeout: 60_000}, async () => {
    const session = await alice_session(scene);
    try {
      const set =
          await scene.call('alice', 'set', 'run_python_code', {code: 'secret = 42'}, {session});
      assert.equal(set.status, 200, set.body);
      await assert_bob_cannot_touch(scene, session, 'run_python_code', {code: 'secret'});
      const read = await scene.call('alice', 'get', 'run_python_code', {code: 'secret'}, {session});
      assert.match(read.messages[0].result.content[0].text, /42/, read.body);
    } finally {
      await scene.request('alice', {method: 'DELETE', session});
    }
  });

  test('a second request with an id in flight is refused and never reaches the child',
       {timeout: 60_000}, async () => {
         const session = await alice_session(scene);
         try {
         // The child is busy with id 7 for a second; another id 7 arrives meanwhile.
         const slow = scene.call('alice', 7, 'run_python_code',
                                 {code: 'import time; time.sleep(1.5); print("first")'}, {session});
         await new Promise((resolve) => setTimeout(resolve, 300));
         const twin = await scene.call('alice', 7, 'write_file',
                                       {file_path: 'twin.txt', content: 'x'}, {session});
         assert.equal(twin.status, 400, twin.body);
         assert.equal(twin.messages[0].error?.code, -32600, twin.body);
         assert.equal(twin.messages[0].id, 7, twin.body);
         const first = await slow;
         assert.equal(first.status, 200, first.body);
         assert.match(first.messages[0].result.content[0].text, /first/, first.body);
         // The refused write never ran, so it kept no count: the grant's three writes remain.
         for (let i = 0; i < 3; ++i) {
           const ok = await scene.call('alice', `w-${i}`, 'write_file',
                                       {file_path: `w${i}.txt`, content: 'x', overwrite: true},
                                       {session});
           assert.match(ok.messages[0].result.content[0].text, /^Successfully wrote/, ok.body);
         }
         const over = await scene.call('alice', 'w-over', 'write_file',
                                       {file_path: 'w.txt', content: 'x'}, {session});
         assert.equal(over.messages[0].result?.structuredContent?.decision, 'rate_limited');
         const listed = await scene.call('alice', 'ls', 'run_python_code',
                                         {code: 'import os; sorted(os.listdir("."))'}, {session});
         assert.doesNotMatch(listed.body, /twin\.txt/);
         } finally {
           await scene.request('alice', {method: 'DELETE', session});
         }
       });

  test('one identity runs at most a quarter of the children; the other still starts its own',
       {timeout: 60_000}, async () => {
         // max_processes 4: each identity may run 1. The children of the sessions ended above
         // free their slots once reaped.
         const first = await alice_session(scene);
         const refused = async () => (await read_metrics(scene.gateway.admin_url))
                                         .get('mcpgate_stdio_refused_total{reason="max_processes_per_identity"}');
         const refused_before = await refused();
         const second = await scene.request('alice', {message: {
           jsonrpc: '2.0', id: 'init-2', method: 'initialize', params: {
             protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'x', version: '1'}}}});
         assert.equal(second.status, 503, second.body);
         assert.equal(second.messages[0].error.code, -32034, second.body);
         assert.equal(second.messages[0].id, 'init-2', 'the bridge\'s reply carries the request id');
         assert.match(second.messages[0].error.message, /alice already runs 1 processes \(max_processes_per_identity\)/);
         const bobs = await scene.open_session('bob');
         assert.ok(bobs);
         assert.equal(await refused(), refused_before + 1);
         await scene.request('alice', {method: 'DELETE', session: first});
         await scene.request('bob', {method: 'DELETE', session: bobs});
       });
});
