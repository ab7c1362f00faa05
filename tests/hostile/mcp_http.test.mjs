// The MCP Streamable HTTP rules a bypass might lean on (issue #7): content types other than
// application/json, a missing Accept, methods other than GET/POST/DELETE, other paths, the
// Mcp-Method / Mcp-Name headers of protocol 2026-07-28 disagreeing with the body, and the same
// call cut in unusual places: a body across many TCP segments and chunks, pipelined requests
// in one segment, a head arriving one byte at a time. Each case asserts the reply the
// specification (or HTTP) prescribes, the audit line, and what the counting upstream saw.
//
// The cases run in order against one gateway and share its session.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {skip_without_gateway} from '../e2e/lib/harness.mjs';

import {approval_text, assert_error_reply, assert_upstream_untouched, start_scene} from './lib/bypass_gateway.mjs';
import {exchange, jsonrpc_messages} from './lib/bypass_wire.mjs';

const deny_rule = 'tools.clear_session.deny_if[0]';

// Asserts a response carries the seed policy's denial of clear_session for `id`.
function assert_denial(response, id) {
  assert.equal(response.status, 200, `${response.head}\n${response.body}`);
  const [message] = jsonrpc_messages(response.body);
  assert.equal(message.id, id, response.body);
  assert.equal(message.result?.isError, true, response.body);
  assert.deepEqual(message.result.content, [{type: 'text', text: approval_text}]);
}

// Asserts a response is the upstream's answer to read_file of `path` for `id`.
function assert_read_file_answer(response, id, path) {
  assert.equal(response.status, 200, `${response.head}\n${response.body}`);
  const message = jsonrpc_messages(response.body).find((m) => m.id === id);
  assert.ok(message, `no answer to ${id}: ${response.body}`);
  assert.deepEqual(message.result?.content, [{type: 'text', text: `contents of ${path}`}]);
}

describe('MCP over HTTP: what a client may send', {skip: skip_without_gateway}, () => {
  let scene = null;

  before(async () => {
    scene = await start_scene('mcp_http');
    await scene.open_session();
  });

  after(async () => {
    if (scene) await scene.stop();
  });

  // Sends `bytes` on a fresh connection; asserts a gateway error reply with `status` and
  // JSON-RPC `code`, one audit line `invalid`, and an untouched upstream. Returns the response.
  async function assert_answered_by_gateway(bytes, status, code, {close = false} = {}) {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const {response, connection} = await exchange(scene.port, bytes);
    try {
      assert_error_reply(response, status, code);
      if (close) {
        assert.equal(response.headers.connection, 'close', response.head);
        assert.equal(await connection.rest_after_close(), '');
      }
    } finally {
      connection.destroy();
    }
    const [line] = await scene.audit_lines_of_case(mark);
    assert.equal(line.decision, 'invalid', JSON.stringify(line));
    assert.equal(line.upstream_status, undefined, JSON.stringify(line));
    await assert_upstream_untouched(scene, calls_before);
    return response;
  }

  test(
      'answers a POST whose Content-Type is not application/json with 415 and -32000', async () => {
        const call = scene.tools_call('ct', 'clear_session');
        for (const type of
                 ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx',
                  'multipart/form-data; boundary=x', 'application/json-seq']) {
          await assert_answered_by_gateway(
              scene.post(call, {headers: {'content-type': type}}), 415, -32000, {close: true});
        }
        await assert_answered_by_gateway(
            scene.post(call, {omit: ['content-type']}), 415, -32000, {close: true});
      });

  test('accepts application/json with parameters and in any case', async () => {
    for (const [index, type] of ['application/json; charset=utf-8', 'Application/JSON'].entries()) {
      const id = `ct-ok-${index}`;
      const {response, connection} = await exchange(
          scene.port, scene.post(scene.tools_call(id, 'read_file', {path: `/srv/${id}`}), {
            headers: {'content-type': type}
          }));
      connection.destroy();
      assert_read_file_answer(response, id, `/srv/${id}`);
    }
  });

  test('answers a POST whose Accept lacks either media type with 406 and -32000', async () => {
    const call = scene.tools_call('acc', 'clear_session');
    for (const accept of ['application/json', 'text/event-stream', 'text/html', '']) {
      await assert_answered_by_gateway(
          scene.post(call, {headers: {accept}}), 406, -32000, {close: true});
    }
    await assert_answered_by_gateway(
        scene.post(call, {omit: ['accept']}), 406, -32000, {close: true});
  });

  test('answers methods other than GET, POST and DELETE with 405, Allow and -32000', async () => {
    for (const method of ['PUT', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT', 'FOO']) {
      const target = method === 'CONNECT' ? `127.0.0.1:${scene.port}` : '/mcp';
      const body = JSON.stringify(scene.tools_call(`m-${method}`, 'clear_session'));
      const bytes = `${method} ${target} HTTP/1.1\r\n${scene.auth_lines()}` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      if (method === 'CONNECT' || method === 'HEAD') {
        // CONNECT: an authority-form target is not the endpoint path, refused before the method
        // matters. HEAD: 405 with the length of the error but, as HTTP requires, no body.
        const calls_before = await scene.calls();
        const mark = await scene.audit_mark();
        const {response, connection} =
            await exchange(scene.port, bytes, {head_request: method === 'HEAD'});
        if (method === 'HEAD') {
          assert.equal(response.status, 405, response.head);
          assert.equal(response.headers.allow, 'GET, POST, DELETE', response.head);
          assert.ok(Number(response.headers['content-length']) > 0, response.head);
          assert.equal(await connection.rest_after_close(), '', 'bytes after the HEAD reply');
        }
        connection.destroy();
        assert.ok([400, 404, 405].includes(response.status), response.head);
        const [line] = await scene.audit_lines_of_case(mark);
        assert.equal(line.decision, 'invalid', JSON.stringify(line));
        await assert_upstream_untouched(scene, calls_before);
        continue;
      }
      const response = await assert_answered_by_gateway(bytes, 405, -32000);
      assert.equal(response.headers.allow, 'GET, POST, DELETE', response.head);
    }
  });

  test('answers other paths with 404 and -32601, whatever the spelling', async () => {
    const body = JSON.stringify(scene.tools_call('path', 'clear_session'));
    for (const target
             of ['/other', '/mcp/', '/MCP', '/mcp/../mcp', '/%6dcp', '//mcp',
                 'http://evil.example/other']) {
      const bytes = `POST ${target} HTTP/1.1\r\n${scene.auth_lines()}` +
          'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
          `Content-Length: ${body.length}\r\n\r\n${body}`;
      const calls_before = await scene.calls();
      const {response, connection} = await exchange(scene.port, bytes);
      connection.destroy();
      assert_error_reply(response, 404, -32601);
      await assert_upstream_untouched(scene, calls_before);
    }
  });

  test(
      'decides an absolute-form target on its path and the body, whatever host it names',
      async () => {
        // RFC 9112 section 3.2.2: a server must accept the absolute form; the authority in it
        // replaces Host. The gateway sends the upstream its own Host either way.
        const calls_before = await scene.calls();
        const body = JSON.stringify(scene.tools_call('absolute', 'clear_session'));
        const {response, connection} = await exchange(
            scene.port,
            `POST http://evil.example/mcp HTTP/1.1\r\n${scene.auth_lines()}` +
                'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
                `Content-Length: ${body.length}\r\n\r\n${body}`);
        connection.destroy();
        assert_denial(response, 'absolute');
        assert.equal((await scene.audit_line_for('absolute')).decision, 'denied');
        await assert_upstream_untouched(scene, calls_before);
      });

  test(
      'answers a 2026-07-28 Mcp-Method or Mcp-Name that disagrees with the body with 400 and -32020',
      async () => {
        const modern = {'mcp-protocol-version': '2026-07-28'};
        const cases = [
          // The header names an allowed tool, the body the denied one.
          [{...modern, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'read_file'}, 'clear_session'],
          // The header names another method.
          [{...modern, 'Mcp-Method': 'tools/list'}, 'clear_session'],
          [{...modern, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'clear_session'}, 'read_file'],
          // Case and escapes: the header must equal the body's unescaped string exactly.
          [{...modern, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'Clear_Session'}, 'clear_session'],
          [{...modern, 'Mcp-Method': 'Tools/Call', 'Mcp-Name': 'clear_session'}, 'clear_session'],
        ];
        for (const [index, [headers, tool]] of cases.entries()) {
          const id = `hdr-${index}`;
          const calls_before = await scene.calls();
          const mark = await scene.audit_mark();
          const {response, connection} = await exchange(
              scene.port, scene.post(scene.tools_call(id, tool, {path: '/a'}), {headers}));
          connection.destroy();
          assert_error_reply(response, 400, -32020, id);
          const [line] = await scene.audit_lines_of_case(mark);
          assert.equal(line.decision, 'invalid', JSON.stringify(line));
          await assert_upstream_untouched(scene, calls_before);
        }
      });

  test('decides on the body when Mcp-Method and Mcp-Name agree with it', async () => {
    const calls_before = await scene.calls();
    const {response, connection} = await exchange(
        scene.port,
        scene.post(
            '{"jsonrpc":"2.0","id":"hdr-agree","method":"tools/call","params":{"name":"clear\\u005fsession","arguments":{}}}',
            {
              headers: {
                'mcp-protocol-version': '2026-07-28',
                'Mcp-Method': 'tools/call',
                'Mcp-Name': 'clear_session'
              }
            }));
    connection.destroy();
    assert_denial(response, 'hdr-agree');
    const line = await scene.audit_line_for('hdr-agree');
    assert.equal(line.decision, 'denied');
    assert.equal(line.rule, deny_rule);
    await assert_upstream_untouched(scene, calls_before);
  });

  test('decides a body split across many TCP segments', async () => {
    const calls_before = await scene.calls();
    const connection = await scene.open_connection();
    try {
      const bytes = Buffer.from(scene.post(
          '{"jsonrpc":"2.0","id":"seg-1","method":"tools/call","params":{"name":"clear\\u005fsession","arguments":{}}}'));
      const head_end = bytes.indexOf('\r\n\r\n') + 4;
      // The head in one piece, then the body seven bytes at a time, cutting the escape apart.
      const pieces = [bytes.subarray(0, head_end)];
      for (let at = head_end; at < bytes.length; at += 7) pieces.push(bytes.subarray(at, at + 7));
      await connection.write_pieces(pieces);
      assert_denial(await connection.next_response(), 'seg-1');
      assert.equal((await scene.audit_line_for('seg-1')).decision, 'denied');
      await assert_upstream_untouched(scene, calls_before);
      // The connection stays usable.
      await scene.normal_call(connection);
    } finally {
      connection.destroy();
    }
  });

  test('decides a chunked body of one-byte chunks, each in its own segment', async () => {
    for (const [id, tool] of [['chunk-deny', 'clear_session'], ['chunk-allow', 'read_file']]) {
      const calls_before = await scene.calls();
      const connection = await scene.open_connection();
      try {
        const body = JSON.stringify(scene.tools_call(id, tool, {path: `/srv/${id}`}));
        const head =
            `POST /mcp HTTP/1.1\r\n${scene.auth_lines()}Content-Type: application/json\r\n` +
            'Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';
        const pieces = [head];
        for (const ch of body) pieces.push(`1\r\n${ch}\r\n`);
        pieces.push('0\r\n\r\n');
        await connection.write_pieces(pieces);
        const response = await connection.next_response();
        const line = await scene.audit_line_for(id);
        if (tool === 'clear_session') {
          assert_denial(response, id);
          assert.equal(line.decision, 'denied');
          await assert_upstream_untouched(scene, calls_before);
        } else {
          assert_read_file_answer(response, id, `/srv/${id}`);
          assert.equal(line.decision, 'allowed');
          assert.equal((await scene.calls()).tools.read_file, calls_before.tools.read_file + 1);
        }
      } finally {
        connection.destroy();
      }
    }
  });

  test('decides a request whose head arrives one byte at a time', async () => {
    for (const [id, tool] of [['byte-deny', 'clear_session'], ['byte-allow', 'read_file']]) {
      const calls_before = await scene.calls();
      const connection = await scene.open_connection();
      try {
        await connection.write_bytewise(
            scene.post(scene.tools_call(id, tool, {path: `/srv/${id}`})));
        const response = await connection.next_response();
        if (tool === 'clear_session') {
          assert_denial(response, id);
          await assert_upstream_untouched(scene, calls_before);
        } else {
          assert_read_file_answer(response, id, `/srv/${id}`);
        }
        assert.equal(
            (await scene.audit_line_for(id)).decision,
            tool === 'clear_session' ? 'denied' : 'allowed');
      } finally {
        connection.destroy();
      }
    }
  });

  test(
      'answers pipelined requests in one segment in order, the denied one never forwarded',
      async () => {
        const calls_before = await scene.calls();
        const connection = await scene.open_connection();
        try {
          await connection.write(
              scene.post(scene.tools_call('pipe-1', 'read_file', {path: '/srv/pipe-1'})) +
              scene.post(scene.tools_call('pipe-2', 'clear_session')) +
              scene.post(scene.tools_call('pipe-3', 'read_file', {path: '/srv/pipe-3'})));
          assert_read_file_answer(await connection.next_response(), 'pipe-1', '/srv/pipe-1');
          assert_denial(await connection.next_response(), 'pipe-2');
          assert_read_file_answer(await connection.next_response(), 'pipe-3', '/srv/pipe-3');
        } finally {
          connection.destroy();
        }
        assert.equal((await scene.audit_line_for('pipe-2')).decision, 'denied');
        const now = await scene.calls();
        assert.equal(now.tools.read_file, calls_before.tools.read_file + 2);
        assert.equal(now.tools.clear_session ?? 0, 0);
      });

  test('answers a request pipelined behind one the gateway refused at its head', async () => {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const connection = await scene.open_connection();
    try {
      // A 404 and a 405 leave a connection without a body open; what follows must be answered,
      // not left waiting until the header timeout.
      await connection.write(
          `GET /other HTTP/1.1\r\n${scene.auth_lines()}\r\n` +
          `OPTIONS /mcp HTTP/1.1\r\n${scene.auth_lines()}\r\n` +
          scene.post(scene.tools_call('after-refusal', 'clear_session')));
      assert_error_reply(await connection.next_response({timeout_ms: 3_000}), 404, -32601);
      assert_error_reply(await connection.next_response({timeout_ms: 3_000}), 405, -32000);
      assert_denial(await connection.next_response({timeout_ms: 3_000}), 'after-refusal');
    } finally {
      connection.destroy();
    }
    const lines = await scene.audit_lines_of_case(mark, 3);
    assert.deepEqual(lines.map((line) => line.decision), ['invalid', 'invalid', 'denied']);
    // The refused requests never got as far as naming who calls.
    assert.equal(lines[0].identity, null, JSON.stringify(lines[0]));
    assert.equal(lines[2].identity, 'alice', JSON.stringify(lines[2]));
    await assert_upstream_untouched(scene, calls_before);
  });

  test('answers a POST without an API key with 401 and never forwards it', async () => {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const {response, connection} = await exchange(
        scene.port,
        scene.post(scene.tools_call('nokey', 'read_file', {path: '/a'}), {key: 'wrong'}));
    connection.destroy();
    // The body came with the head: the 401 answers its id (#21).
    assert_error_reply(response, 401, -32040, 'nokey');
    assert.match(response.headers['www-authenticate'] ?? '', /^Bearer\b/);
    const [line] = await scene.audit_lines_of_case(mark);
    assert.equal(line.decision, 'unauthenticated', JSON.stringify(line));
    await assert_upstream_untouched(scene, calls_before);
  });

  test(
      'serves a normal call after every attempt; clear_session never reached the upstream',
      async () => {
        await scene.normal_call();
        const calls = await scene.calls();
        assert.equal(calls.tools.clear_session ?? 0, 0, JSON.stringify(calls));
      });
});
