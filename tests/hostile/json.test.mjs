// Bypass attempts in the JSON-RPC body (issue #7): documents two parsers could read differently
// (duplicate members, trailing data, a BOM, comments, NaN, invalid UTF-8, lone surrogates, deep
// nesting, ids beyond 2^53), escaped names and methods, and batches. Each is sent as exact bytes
// to a running gateway in front of the counting upstream; each case asserts the reply, the
// audit line, and that the upstream saw nothing; the gateway then still serves a normal call.
//
// The cases run in order against one gateway and share its session.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {skip_without_gateway} from '../e2e/lib/harness.mjs';

import {approval_text, assert_error_reply, assert_upstream_untouched, start_scene} from './lib/bypass_gateway.mjs';
import {exchange, jsonrpc_messages} from './lib/bypass_wire.mjs';

const max_depth = 12;
const deny_rule = 'tools.clear_session.deny_if[0]';

// Sends one body (a string of exact bytes, or a Buffer) on a fresh connection with the
// well-behaved headers; resolves with the response.
async function send_body(scene, body, options) {
  const head_and_body =
      typeof body === 'string' ? Buffer.from(scene.post(body, options), 'utf8') : Buffer.concat([
        Buffer.from(scene.post('', options).replace(/content-length: 0\r\n\r\n$/, '')),
        Buffer.from(`content-length: ${body.length}\r\n\r\n`),
        body,
      ]);
  const {response, connection} = await exchange(scene.port, head_and_body);
  connection.destroy();
  return response;
}

// Asserts one case the gateway must refuse as a whole: HTTP 400 with JSON-RPC `code`, one
// audit line `invalid` with no method, tool or upstream status, and an untouched upstream.
async function assert_refused(scene, body, code, options) {
  const calls_before = await scene.calls();
  const mark = await scene.audit_mark();
  const response = await send_body(scene, body, options);
  const reply = assert_error_reply(response, 400, code);
  const [line] = await scene.audit_lines_of_case(mark);
  assert.equal(line.decision, 'invalid', JSON.stringify(line));
  assert.equal(line.identity, 'alice', JSON.stringify(line));
  assert.equal(line.method, null, JSON.stringify(line));
  assert.equal(line.tool, null, JSON.stringify(line));
  assert.equal(line.upstream_status, undefined, JSON.stringify(line));
  await assert_upstream_untouched(scene, calls_before);
  return reply;
}

// Asserts that `body` (a single tools/call of clear_session, however spelled) is denied by the
// seed policy and never forwarded; returns the audit line.
async function assert_denied(scene, body, id, options) {
  const calls_before = await scene.calls();
  const response = await send_body(scene, body, options);
  assert.equal(response.status, 200, `${response.head}\n${response.body}`);
  const [message] = jsonrpc_messages(response.body);
  assert.equal(message.id, id, response.body);
  assert.equal(message.result?.isError, true, response.body);
  assert.deepEqual(message.result.content, [{type: 'text', text: approval_text}]);
  assert.deepEqual(
      message.result.structuredContent,
      {decision: 'denied', tool: 'clear_session', rule: deny_rule});
  const line = await scene.audit_line_for(id);
  assert.equal(line.decision, 'denied', JSON.stringify(line));
  assert.equal(line.method, 'tools/call', JSON.stringify(line));
  assert.equal(line.tool, 'clear_session', JSON.stringify(line));
  assert.equal(line.rule, deny_rule, JSON.stringify(line));
  assert.equal(line.upstream_status, undefined, JSON.stringify(line));
  await assert_upstream_untouched(scene, calls_before);
  return line;
}

describe('JSON-RPC bodies built to bypass the policy', {skip: skip_without_gateway}, () => {
  let scene = null;

  before(async () => {
    scene = await start_scene('json', {limits: {max_depth}});
    await scene.open_session();
  });

  after(async () => {
    if (scene) await scene.stop();
  });

  test('serves a normal call before any attack', async () => {
    await scene.normal_call();
  });

  test('rejects duplicate members anywhere in the envelope or params with -32600', async () => {
    const bodies = [
      // Two tool names: the gateway could read one and the upstream the other.
      '{"jsonrpc":"2.0","id":"d1","method":"tools/call","params":{"name":"read_file","name":"clear_session","arguments":{}}}',
      // Two methods.
      '{"jsonrpc":"2.0","id":"d2","method":"ping","method":"tools/call","params":{"name":"clear_session","arguments":{}}}',
      // Two params objects.
      '{"jsonrpc":"2.0","id":"d3","method":"tools/call","params":{"name":"read_file","arguments":{}},"params":{"name":"clear_session","arguments":{}}}',
      // Two ids, two jsonrpc members.
      '{"jsonrpc":"2.0","id":"d4","id":"d5","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}}',
      '{"jsonrpc":"2.0","jsonrpc":"1.0","id":"d6","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}}',
      // Duplicates deep inside the arguments, where the policy's conditions look.
      '{"jsonrpc":"2.0","id":"d7","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a","path":"/etc/shadow"}}}',
      '{"jsonrpc":"2.0","id":"d8","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a","o":[{"k":1,"k":2}]}}}',
      // The same name once escaped and once not is still a duplicate.
      '{"jsonrpc":"2.0","id":"d9","method":"tools/call","params":{"name":"read_file","n\\u0061me":"clear_session","arguments":{}}}',
    ];
    for (const body of bodies) await assert_refused(scene, body, -32600);
  });

  test('decides on the unescaped tool name and method: escaped clear_session is denied', async () => {
    await assert_denied(
        scene,
        '{"jsonrpc":"2.0","id":"e1","method":"tools\\/call","params":{"name":"clear\\u005fsession","arguments":{}}}',
        'e1');
    await assert_denied(
        scene,
        '{"jsonrpc":"2.0","id":"e2","method":"\\u0074ools/call","params":{"name":"\\u0063\\u006c\\u0065\\u0061\\u0072\\u005f\\u0073\\u0065\\u0073\\u0073\\u0069\\u006f\\u006e"}}',
        'e2');
    // Escaped member names are read too: "\u006dethod" is the method.
    await assert_denied(
        scene,
        '{"jsonrpc":"2.0","id":"e3","\\u006dethod":"tools/call","p\\u0061rams":{"n\\u0061me":"clear_session","arguments":{}}}',
        'e3');
  });

  test('forwards an escaped allowed tool name and audits it unescaped', async () => {
    const before_calls = await scene.calls();
    const response = await send_body(
        scene,
        '{"jsonrpc":"2.0","id":"e4","method":"tools/call","params":{"name":"read\\u005ffile","arguments":{"path":"/srv/e4"}}}');
    assert.equal(response.status, 200, response.body);
    const [message] = jsonrpc_messages(response.body);
    assert.deepEqual(message.result?.content, [{type: 'text', text: 'contents of /srv/e4'}]);
    const line = await scene.audit_line_for('e4');
    assert.equal(line.decision, 'allowed');
    assert.equal(line.tool, 'read_file');
    assert.equal(line.upstream_status, 200);
    const now = await scene.calls();
    assert.equal(now.tools.read_file, (before_calls.tools.read_file ?? 0) + 1);
    assert.equal(now.tools.clear_session ?? 0, 0);
  });

  test('rejects what is not one JSON value with -32700', async () => {
    const call =
        '{"jsonrpc":"2.0","id":"p1","method":"tools/call","params":{"name":"clear_session","arguments":{}}}';
    const bodies = [
      // Trailing data: a second message, a second value, garbage.
      `${call}{"jsonrpc":"2.0","id":"p2","method":"tools/call","params":{"name":"clear_session"}}`,
      `${call} []`,
      `${call} x`,
      // A byte order mark.
      `\ufeff${call}`,
      // Comments.
      '{"jsonrpc":"2.0",/* c */"id":"p3","method":"ping"}',
      '{"jsonrpc":"2.0","id":"p4","method":"ping"} // c',
      // NaN and the infinities.
      '{"jsonrpc":"2.0","id":"p5","method":"tools/call","params":{"name":"read_file","arguments":{"n":NaN}}}',
      '{"jsonrpc":"2.0","id":"p6","method":"tools/call","params":{"name":"read_file","arguments":{"n":Infinity}}}',
      '{"jsonrpc":"2.0","id":"p7","method":"tools/call","params":{"name":"read_file","arguments":{"n":-Infinity}}}',
      // Lone surrogates, high and low, and a reversed pair.
      '{"jsonrpc":"2.0","id":"p8","method":"tools/call","params":{"name":"read_file","arguments":{"path":"\\ud800"}}}',
      '{"jsonrpc":"2.0","id":"p9","method":"tools/call","params":{"name":"clear_session\\udc00"}}',
      '{"jsonrpc":"2.0","id":"p10","method":"tools/call","params":{"name":"read_file","arguments":{"path":"\\udc00\\ud800"}}}',
      // Single quotes, a trailing comma, an unquoted key.
      '{\'jsonrpc\':\'2.0\',\'id\':\'p11\',\'method\':\'ping\'}',
      '{"jsonrpc":"2.0","id":"p12","method":"ping",}',
      '{"jsonrpc":"2.0",id:"p13","method":"ping"}',
      // Nothing at all.
      '',
    ];
    for (const body of bodies) await assert_refused(scene, body, -32700);
  });

  test('rejects invalid UTF-8 with -32700', async () => {
    const prefix = '{"jsonrpc":"2.0","id":"u1","method":"tools/call","params":{"name":"';
    const suffix = '","arguments":{}}}';
    for (const bad
             of [[0xff],              // never valid
                 [0xc0, 0xaf],        // overlong "/"
                 [0xe0, 0x80, 0xaf],  // overlong, three bytes
                 [0xed, 0xa0, 0x80],  // a surrogate encoded directly
                 [0xc3],              // truncated sequence
    ]) {
      const body = Buffer.concat(
          [Buffer.from(`${prefix}clear_session`), Buffer.from(bad), Buffer.from(suffix)]);
      await assert_refused(scene, body, -32700);
    }
  });

  test(
      `rejects nesting deeper than max_depth (${
          max_depth}) with -32600 and forwards it at the limit`,
      async () => {
        // The message object is depth 1, params 2, arguments 3: arrays fill the rest.
        const nested = (levels) => '['.repeat(levels) + '1' +
            ']'.repeat(levels);
        const at_limit =
            `{"jsonrpc":"2.0","id":"n1","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/srv/n1","deep":${
                nested(max_depth - 3)}}}}`;
        const response = await send_body(scene, at_limit);
        assert.equal(response.status, 200, response.body);
        assert.equal((await scene.audit_line_for('n1')).decision, 'allowed');

        await assert_refused(
            scene,
            `{"jsonrpc":"2.0","id":"n2","method":"tools/call","params":{"name":"read_file","arguments":{"deep":${
                nested(max_depth - 2)}}}}`,
            -32600);
        // Far beyond the limit, the kind of body that exhausts a recursive parser's stack.
        await assert_refused(
            scene,
            `{"jsonrpc":"2.0","id":"n3","method":"tools/call","params":{"name":"clear_session","arguments":{"deep":${
                nested(5000)}}}}`,
            -32600);
      });

  test('rejects ids beyond 2^53, fractions and exponents with -32600', async () => {
    for (const id
             of ['9007199254740993', '-9007199254740993', '1e400', '18446744073709551617', '1.5',
                 '1e3']) {
      await assert_refused(
          scene,
          `{"jsonrpc":"2.0","id":${
              id},"method":"tools/call","params":{"name":"clear_session","arguments":{}}}`,
          -32600);
    }
    // An id of 2^53 - 1 is an integer every reader agrees on: denied by policy, id echoed.
    const calls_before = await scene.calls();
    const response = await send_body(
        scene,
        '{"jsonrpc":"2.0","id":9007199254740991,"method":"tools/call","params":{"name":"clear_session","arguments":{}}}');
    assert.equal(response.status, 200, response.body);
    assert.match(response.body, /"id":9007199254740991[,}]/);
    assert.match(response.body, /\[POLICY DENIED\]/);
    const line = await scene.audit_line_for(9007199254740991);
    assert.equal(line.decision, 'denied', JSON.stringify(line));
    await assert_upstream_untouched(scene, calls_before);
  });

  test('rejects members of the wrong type and a wrong jsonrpc version with -32600', async () => {
    for (
        const body of
            ['{"jsonrpc":"1.0","id":"t1","method":"tools/call","params":{"name":"clear_session"}}',
             '{"id":"t2","method":"tools/call","params":{"name":"clear_session"}}',
             '{"jsonrpc":"2.0","id":"t3","method":["tools/call"],"params":{"name":"clear_session"}}',
             '{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"clear_session"}}',
             '{"jsonrpc":"2.0","id":"t5","method":"tools/call","params":{"name":["clear_session"]}}',
             '"tools/call"',
    ]) {
      await assert_refused(scene, body, -32600);
    }
  });

  test('refuses every batch with -32600 under protocol 2025-06-18', async () => {
    await assert_refused(
        scene,
        '[{"jsonrpc":"2.0","id":"b1","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}}]',
        -32600);
    await assert_refused(
        scene,
        '[{"jsonrpc":"2.0","id":"b2","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}},' +
            '{"jsonrpc":"2.0","id":"b3","method":"tools/call","params":{"name":"clear_session"}}]',
        -32600);
  });

  test('decides every element of a 2025-03-26 batch: one denied member stops the whole batch', async () => {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const response = await send_body(
        scene,
        '[{"jsonrpc":"2.0","id":"b4","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}},' +
            '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}},' +
            '{"jsonrpc":"2.0","id":"b5","method":"tools/call","params":{"name":"clear\\u005fsession","arguments":{}}}]',
        {headers: {'mcp-protocol-version': '2025-03-26'}});
    assert.equal(response.status, 200, response.body);
    const replies = JSON.parse(response.body);
    assert.ok(Array.isArray(replies), response.body);
    const by_id = Object.fromEntries(replies.map((reply) => [reply.id, reply]));
    assert.deepEqual(Object.keys(by_id).sort(), ['b4', 'b5'], response.body);
    assert.equal(by_id.b4.error?.code, -32012, response.body);
    assert.deepEqual(by_id.b5.result?.content, [{type: 'text', text: approval_text}]);

    const lines = await scene.audit_lines_of_case(mark, 3);
    const line_of = Object.fromEntries(lines.filter((l) => l.id !== null).map((l) => [l.id, l]));
    assert.equal(line_of.b4.decision, 'denied', JSON.stringify(lines));
    assert.equal(line_of.b4.rule, 'batch', JSON.stringify(lines));
    assert.equal(line_of.b5.decision, 'denied', JSON.stringify(lines));
    assert.equal(line_of.b5.rule, deny_rule, JSON.stringify(lines));
    assert.ok(lines.every((l) => l.upstream_status === undefined), JSON.stringify(lines));
    await assert_upstream_untouched(scene, calls_before);
  });

  test('decides a batch without a protocol header as 2025-03-26, element by element', async () => {
    const calls_before = await scene.calls();
    const response = await send_body(
        scene,
        '[{"jsonrpc":"2.0","id":"b6","method":"tools/call","params":{"name":"clear_session","arguments":{}}}]',
        {omit: ['mcp-protocol-version']});
    assert.equal(response.status, 200, response.body);
    assert.match(response.body, /\[POLICY DENIED\]/);
    assert.equal((await scene.audit_line_for('b6')).decision, 'denied');
    await assert_upstream_untouched(scene, calls_before);
  });

  test('rejects an empty batch and an invalid element with -32600', async () => {
    const options = {headers: {'mcp-protocol-version': '2025-03-26'}};
    await assert_refused(scene, '[]', -32600, options);
    await assert_refused(
        scene,
        '[{"jsonrpc":"2.0","id":"b7","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}},7]',
        -32600, options);
    await assert_refused(
        scene,
        '[{"jsonrpc":"2.0","id":"b8","method":"tools/call","params":{"name":"read_file","name":"clear_session"}}]',
        -32600, options);
    // A batch inside a batch.
    await assert_refused(
        scene,
        '[[{"jsonrpc":"2.0","id":"b9","method":"tools/call","params":{"name":"clear_session"}}]]',
        -32600, options);
  });

  test('still serves a normal call, and clear_session never reached the upstream', async () => {
    await scene.normal_call();
    const calls = await scene.calls();
    assert.equal(calls.tools.clear_session ?? 0, 0, JSON.stringify(calls));
    assert.equal(calls.methods.ping ?? 0, 0, JSON.stringify(calls));
  });
});
