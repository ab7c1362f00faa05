// Slow clients against a running gateway (issue #7): a head that never ends (slowloris, 408),
// one that keeps trickling (the deadline is not pushed back by each byte), a body that stalls
// (408), and idle keep-alive connections (closed without a reply). The gateway then still
// serves a normal call.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {skip_without_gateway} from '../e2e/lib/harness.mjs';

import {assert_error_reply, assert_upstream_untouched, start_scene} from './lib/bypass_gateway.mjs';

const header_timeout_ms = 400;
const idle_timeout_ms = 1000;
// How late a timeout may fire on a loaded machine: the gateway checks deadlines on a tick.
const slack_ms = 3000;

describe('timeouts', {skip: skip_without_gateway}, () => {
  let scene = null;

  before(async () => {
    scene = await start_scene('timeouts', {limits: {header_timeout_ms, idle_timeout_ms}});
    await scene.open_session();
  });

  after(async () => {
    if (scene) await scene.stop();
  });

  // Waits for the 408 on `connection`, started at `started` (ms), and asserts the reply, the
  // close, the timing, the audit line after `mark` and the untouched upstream.
  async function assert_timed_out(connection, started, mark, calls_before) {
    const response = await connection.next_response({timeout_ms: header_timeout_ms + slack_ms});
    const elapsed = Date.now() - started;
    assert_error_reply(response, 408, -32600);
    assert.equal(response.headers.connection, 'close', response.head);
    assert.ok(elapsed >= header_timeout_ms - 50, `408 after ${elapsed} ms, before the timeout`);
    await connection.closed();
    const [line] = await scene.audit_lines_of_case(mark);
    assert.equal(line.decision, 'invalid', JSON.stringify(line));
    assert.equal(line.upstream_status, undefined, JSON.stringify(line));
    await assert_upstream_untouched(scene, calls_before);
    return line;
  }

  test('answers a head that never completes with 408 and closes (slowloris)', async () => {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const connection = await scene.open_connection();
    try {
      const started = Date.now();
      await connection.write(`POST /mcp HTTP/1.1\r\n${scene.auth_lines()}X-Slow: `);
      const line = await assert_timed_out(connection, started, mark, calls_before);
      // The line describes this request, not one the connection slot served before.
      const partial_bytes =
          Buffer.byteLength(`POST /mcp HTTP/1.1\r\n${scene.auth_lines()}X-Slow: `);
      assert.equal(line.bytes_in, partial_bytes, JSON.stringify(line));
      // Its head never completed, so it never said who is calling: no identity, no session
      // (not those of the slot's previous connection, the session's initialize).
      assert.equal(line.identity, null, JSON.stringify(line));
      assert.equal(line.session, null, JSON.stringify(line));
    } finally {
      connection.destroy();
    }
  });

  test(
      'answers a head that keeps trickling in with 408: bytes do not push the deadline back',
      async () => {
        const calls_before = await scene.calls();
        const mark = await scene.audit_mark();
        const connection = await scene.open_connection();
        // One byte every 50 ms, far more often than the timeout, for as long as the socket is open.
        const trickle = setInterval(() => {
          connection.write('a').catch(() => {});
        }, 50);
        try {
          const started = Date.now();
          await connection.write(`POST /mcp HTTP/1.1\r\n${scene.auth_lines()}X-Slow: `);
          await assert_timed_out(connection, started, mark, calls_before);
        } finally {
          clearInterval(trickle);
          connection.destroy();
        }
      });

  test('answers a body that stalls with 408 and closes', async () => {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const connection = await scene.open_connection();
    try {
      const started = Date.now();
      const bytes = scene.post(scene.tools_call('stalled', 'read_file', {path: '/a'}));
      await connection.write(bytes.slice(0, -10));
      await assert_timed_out(connection, started, mark, calls_before);
    } finally {
      connection.destroy();
    }
  });

  test('closes a keep-alive connection idle for idle_timeout_ms, without a reply', async () => {
    const connection = await scene.open_connection();
    try {
      await scene.normal_call(connection);
      const idle_from = Date.now();
      assert.equal(await connection.rest_after_close({timeout_ms: idle_timeout_ms + slack_ms}), '');
      const idle_for = Date.now() - idle_from;
      assert.ok(idle_for >= idle_timeout_ms - 50, `closed after ${idle_for} ms idle`);
    } finally {
      connection.destroy();
    }
  });

  test(
      'closes a connection that never sends a byte after idle_timeout_ms, without a reply',
      async () => {
        const connection = await scene.open_connection();
        try {
          const opened = Date.now();
          assert.equal(
              await connection.rest_after_close({timeout_ms: idle_timeout_ms + slack_ms}), '');
          const idle_for = Date.now() - opened;
          assert.ok(idle_for >= idle_timeout_ms - 50, `closed after ${idle_for} ms idle`);
        } finally {
          connection.destroy();
        }
      });

  test('serves a normal call afterwards', async () => {
    await scene.normal_call();
  });
});
