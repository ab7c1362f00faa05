// HTTP request smuggling against a running gateway (issue #7): framing that two HTTP parsers
// could read differently (Content-Length with Transfer-Encoding, duplicate or malformed
// Content-Length, unknown codings, obsolete line folding, bare LF or CR, bad chunk sizes, abused
// chunk extensions, spaces in header names). Every case is followed, in the same write, by a
// request the policy denies, as a smuggled second request would be. Each must get one 400 (or
// 501/505) with Connection: close and JSON-RPC -32600, the connection must then close with
// nothing else answered, one audit line must say `invalid`, and the counting upstream must have
// seen nothing; afterwards a normal call still works.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {skip_without_gateway} from '../e2e/lib/harness.mjs';

import {assert_error_reply, assert_upstream_untouched, start_scene} from './lib/bypass_gateway.mjs';

describe('HTTP request smuggling', {skip: skip_without_gateway}, () => {
  let scene = null;
  // Set in before(): the pieces each case is built from.
  let auth = '';
  let denied_body = '';
  let smuggled = '';
  const media = 'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n';
  const hex = (n) => n.toString(16);

  before(async () => {
    scene = await start_scene('smuggling');
    await scene.open_session();
    auth = scene.auth_lines();
    denied_body = JSON.stringify(scene.tools_call('smuggled-1', 'clear_session'));
    smuggled = scene.post(scene.tools_call('smuggled-2', 'clear_session'));
  });

  after(async () => {
    if (scene) await scene.stop();
  });

  // Sends `bytes` followed by a smuggled request on one connection, then asserts the single
  // refusal with `status`, the close, the audit line and the untouched upstream.
  async function assert_refused_and_closed(bytes, status = 400) {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const connection = await scene.open_connection();
    try {
      await connection.write(Buffer.from(bytes + smuggled, 'latin1'));
      const response = await connection.next_response();
      assert_error_reply(response, status, -32600);
      assert.equal(response.headers.connection, 'close', response.head);
      const rest = await connection.rest_after_close();
      assert.equal(rest, '', 'a request after the refused one was answered');
    } finally {
      connection.destroy();
    }
    const [line] = await scene.audit_lines_of_case(mark);
    assert.equal(line.decision, 'invalid', JSON.stringify(line));
    assert.equal(line.method, null, JSON.stringify(line));
    assert.equal(line.upstream_status, undefined, JSON.stringify(line));
    await assert_upstream_untouched(scene, calls_before);
  }

  const cases = [
    [
      'Content-Length together with Transfer-Encoding',
      () => `POST /mcp HTTP/1.1\r\n${auth}${
          media}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`
    ],
    [
      'Transfer-Encoding before Content-Length',
      () => `POST /mcp HTTP/1.1\r\n${auth}${
          media}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${
          hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'two equal Content-Length fields',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: ${
          denied_body.length}\r\nContent-Length: ${denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'two conflicting Content-Length fields',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: ${
          denied_body.length}\r\nContent-Length: 2\r\n\r\n${denied_body}`
    ],
    [
      'a Content-Length list',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: ${denied_body.length}, ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a signed Content-Length',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: +${denied_body.length}\r\n\r\n${
          denied_body}`
    ],
    [
      'a negative Content-Length',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: -1\r\n\r\n`
    ],
    [
      'a hexadecimal Content-Length',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: 0x${
          hex(denied_body.length)}\r\n\r\n${denied_body}`
    ],
    [
      'a Content-Length beyond 64 bits',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: 18446744073709551617\r\n\r\n${
          denied_body}`
    ],
    [
      'chunked twice',
      () => `POST /mcp HTTP/1.1\r\n${auth}${
          media}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'chunked not the last coding',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked, identity\r\n\r\n${
          hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'obsolete line folding',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}X-Folded: a\r\n b\r\nContent-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'Transfer-Encoding folded onto a second line',
      () => `POST /mcp HTTP/1.1\r\n${auth}${
          media}Transfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n${
          hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a first header line that starts with whitespace',
      () => `POST /mcp HTTP/1.1\r\n Transfer-Encoding: chunked\r\n${auth}${media}Content-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a bare LF ending the request line',
      () => `POST /mcp HTTP/1.1\n${auth}${media}Content-Length: ${denied_body.length}\r\n\r\n${
          denied_body}`
    ],
    [
      'a bare LF inside the head',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}X-A: 1\nContent-Length: 2\r\nContent-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a bare LF ending the head',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length: ${denied_body.length}\n\n${
          denied_body}`
    ],
    [
      'a bare CR inside a header',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}X-A: 1\rContent-Length: 2\r\nContent-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a space between header name and colon',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding : chunked\r\nContent-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a tab between header name and colon',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length\t: ${denied_body.length}\r\n\r\n${
          denied_body}`
    ],
    [
      'a space inside a header name',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content Length: 2\r\nContent-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a NUL byte in a header value',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}X-A: a\0b\r\nContent-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a header line without a colon',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Content-Length ${denied_body.length}\r\n\r\n${
          denied_body}`
    ],
    [
      'a missing Host',
      () => `POST /mcp HTTP/1.1\r\n${auth.replace(/^Host: [^\r]*\r\n/, '')}${
          media}Content-Length: ${denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'two Host fields',
      () => `POST /mcp HTTP/1.1\r\n${auth}Host: evil.example\r\n${media}Content-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'two Authorization fields',
      () => `POST /mcp HTTP/1.1\r\n${auth}Authorization: Bearer other\r\n${media}Content-Length: ${
          denied_body.length}\r\n\r\n${denied_body}`
    ],
    [
      'a negative chunk size',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n-1\r\n${
          denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk size with 0x',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n0x${
          hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk size that overflows 64 bits',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n1${
            '0'.repeat(16)}${hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk size followed by a space',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length)} \r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'an empty chunk size',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n\r\n${
          denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk size line ended by a bare LF',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length)}\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'chunk data longer than its size',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length - 4)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk extension of 20,000 bytes',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length)};${'x'.repeat(20_000)}\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk extension hiding a line break',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length)};a\nb\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a chunk extension with a NUL byte',
      () => `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n${
          hex(denied_body.length)};a=\0\r\n${denied_body}\r\n0\r\n\r\n`
    ],
    [
      'a request line with two spaces',
      () => `POST  /mcp HTTP/1.1\r\n${auth}${media}Content-Length: ${denied_body.length}\r\n\r\n${
          denied_body}`
    ],
    [
      'a lower-case HTTP version',
      () => `POST /mcp http/1.1\r\n${auth}${media}Content-Length: ${denied_body.length}\r\n\r\n${
          denied_body}`
    ],
  ];

  for (const [name, build] of cases) {
    test(
        `refuses ${name} with 400 and closes; the request behind it is never answered`,
        () => assert_refused_and_closed(build()));
  }

  test('refuses an unknown transfer coding with 501 and closes', async () => {
    for (const coding of ['xchunked', 'gzip, chunked', 'chunked;q=1']) {
      await assert_refused_and_closed(
          `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: ${coding}\r\n\r\n${
              hex(denied_body.length)}\r\n${denied_body}\r\n0\r\n\r\n`,
          coding === 'chunked;q=1' ? 400 : 501);
    }
  });

  test('refuses an HTTP version other than 1.x with 505 and closes', async () => {
    await assert_refused_and_closed(
        `POST /mcp HTTP/2.0\r\n${auth}${media}Content-Length: ${denied_body.length}\r\n\r\n${
            denied_body}`,
        505);
  });

  test('decides a chunked body with extensions and trailers like any other', async () => {
    const calls_before = await scene.calls();
    const connection = await scene.open_connection();
    const body = JSON.stringify(scene.tools_call('chunked-1', 'clear_session'));
    await connection.write(
        `POST /mcp HTTP/1.1\r\n${auth}${media}Transfer-Encoding: chunked\r\n\r\n` +
        `${hex(10)};name=value\r\n${body.slice(0, 10)}\r\n` +
        `${hex(body.length - 10)};x\r\n${body.slice(10)}\r\n0\r\nX-Trailer: 1\r\n\r\n`);
    const response = await connection.next_response();
    connection.destroy();
    assert.equal(response.status, 200, response.body);
    assert.match(response.body, /\[POLICY DENIED\]/);
    assert.equal((await scene.audit_line_for('chunked-1')).decision, 'denied');
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
