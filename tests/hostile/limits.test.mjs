// Size and count limits against a running gateway (issue #7): the request head (431), the
// request target (414), the body, declared or chunked (413), the batch size, and connections
// per shard (beyond it: accepted, answered 503 with -32050 and closed, and the gateway serves
// again once a slot is free). Each refusal is checked for its status, JSON-RPC code, close,
// audit line and an untouched counting upstream.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {poll, skip_without_gateway} from '../e2e/lib/harness.mjs';

import {assert_error_reply, assert_upstream_untouched, start_scene} from './lib/bypass_gateway.mjs';
import {exchange, jsonrpc_messages} from './lib/bypass_wire.mjs';

const limits = {
  max_head_bytes: 16384,
  max_headers: 40,
  max_body_bytes: 16384,
  max_batch: 4,
  max_connections_per_shard: 4,
};

describe('limits', {skip: skip_without_gateway}, () => {
  let scene = null;

  before(async () => {
    scene = await start_scene('limits', {limits, shards: 1});
    await scene.open_session();
  });

  after(async () => {
    if (scene) await scene.stop();
  });

  // Sends `bytes` on a fresh connection and asserts a refusal with `status` and `code` that
  // closes the connection, one `invalid` audit line and an untouched upstream.
  async function assert_refused_and_closed(bytes, status, code) {
    const calls_before = await scene.calls();
    const mark = await scene.audit_mark();
    const {response, connection} = await exchange(scene.port, bytes);
    try {
      assert_error_reply(response, status, code);
      assert.equal(response.headers.connection, 'close', response.head);
      await connection.closed();
    } finally {
      connection.destroy();
    }
    const [line] = await scene.audit_lines_of_case(mark);
    assert.equal(line.decision, 'invalid', JSON.stringify(line));
    assert.equal(line.upstream_status, undefined, JSON.stringify(line));
    await assert_upstream_untouched(scene, calls_before);
  }

  test('answers a head over max_head_bytes with 431 and closes', async () => {
    const call = scene.tools_call('big-head', 'clear_session');
    await assert_refused_and_closed(
        scene.post(call, {headers: {'X-Padding': 'a'.repeat(limits.max_head_bytes)}}), 431, -32600);
    // Many small fields adding up past the limit.
    const many = {};
    for (let i = 0; i < 30; ++i) many[`X-Pad-${i}`] = 'b'.repeat(600);
    await assert_refused_and_closed(scene.post(call, {headers: many}), 431, -32600);
  });

  test('answers more than max_headers fields with 431 and closes', async () => {
    const many = {};
    for (let i = 0; i < limits.max_headers; ++i) many[`X-F-${i}`] = '1';
    await assert_refused_and_closed(
        scene.post(scene.tools_call('many-headers', 'clear_session'), {headers: many}), 431,
        -32600);
  });

  test('answers a request target over 8 KiB with 414 and closes', async () => {
    const body = JSON.stringify(scene.tools_call('long-uri', 'clear_session'));
    await assert_refused_and_closed(
        `POST /mcp?${'q'.repeat(9000)} HTTP/1.1\r\n${scene.auth_lines()}` +
            'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
            `Content-Length: ${body.length}\r\n\r\n${body}`,
        414, -32600);
  });

  test(
      'answers a declared body over max_body_bytes with 413 before it arrives, and closes',
      async () => {
        // Only the head is sent: the gateway must not wait for a body it will refuse.
        const head =
            `POST /mcp HTTP/1.1\r\n${scene.auth_lines()}Content-Type: application/json\r\n` +
            `Accept: application/json, text/event-stream\r\nContent-Length: ${
                limits.max_body_bytes + 1}\r\n\r\n`;
        await assert_refused_and_closed(head, 413, -32600);
      });

  test('answers a body over max_body_bytes with 413 and closes', async () => {
    const call =
        scene.tools_call('big-body', 'clear_session', {pad: 'x'.repeat(limits.max_body_bytes)});
    await assert_refused_and_closed(scene.post(call), 413, -32600);
  });

  test('answers a chunked body growing past max_body_bytes with 413 and closes', async () => {
    const body = JSON.stringify(
        scene.tools_call('big-chunked', 'clear_session', {pad: 'x'.repeat(limits.max_body_bytes)}));
    let chunks = '';
    for (let at = 0; at < body.length; at += 1000) {
      const piece = body.slice(at, at + 1000);
      chunks += `${piece.length.toString(16)}\r\n${piece}\r\n`;
    }
    await assert_refused_and_closed(
        `POST /mcp HTTP/1.1\r\n${scene.auth_lines()}Content-Type: application/json\r\n` +
            `Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n${
                chunks}0\r\n\r\n`,
        413, -32600);
  });

  test(
      `answers a 2025-03-26 batch over max_batch (${limits.max_batch}) with 400 and -32600`,
      async () => {
        const batch = [];
        for (let i = 0; i <= limits.max_batch; ++i)
          batch.push(scene.tools_call(`batch-${i}`, 'read_file', {path: '/a'}));
        const calls_before = await scene.calls();
        const mark = await scene.audit_mark();
        const {response, connection} = await exchange(
            scene.port, scene.post(batch, {headers: {'mcp-protocol-version': '2025-03-26'}}));
        connection.destroy();
        assert_error_reply(response, 400, -32600);
        const [line] = await scene.audit_lines_of_case(mark);
        assert.equal(line.decision, 'invalid');
        await assert_upstream_untouched(scene, calls_before);
      });

  test(
      'accepts connections over max_connections_per_shard, answers 503 with -32050 and closes',
      async () => {
        const held = [];
        try {
          // Fill every slot; a call on each proves the gateway holds it.
          for (let i = 0; i < limits.max_connections_per_shard; ++i) {
            const connection = await scene.open_connection();
            held.push(connection);
            await scene.normal_call(connection);
          }
          const calls_before = await scene.calls();
          // Accepting never stops: each further client hears why, with a body as long as stated,
          // and leaves an audit line naming the limit.
          for (let i = 0; i < 3; ++i) {
            const mark = await scene.audit_mark();
            const extra = await scene.open_connection();
            try {
              const response = await extra.next_response();
              assert_error_reply(response, 503, -32050);
              assert.equal(response.headers.connection, 'close', response.head);
              assert.equal(
                  await extra.rest_after_close(), '', 'bytes beyond the stated Content-Length');
            } finally {
              extra.destroy();
            }
            const [line] = await scene.audit_lines_of_case(mark);
            assert.equal(line.decision, 'invalid', JSON.stringify(line));
            assert.equal(line.rule, 'limits.max_connections_per_shard', JSON.stringify(line));
          }
          await assert_upstream_untouched(scene, calls_before);
          // The held connections still work.
          await scene.normal_call(held[0]);
        } finally {
          for (const connection of held.splice(0)) connection.destroy();
        }
        // Once the gateway has seen the closes, a new client is served again.
        await poll(async () => {
          const {response, connection} = await exchange(
              scene.port,
              scene.post(
                  scene.tools_call(scene.unique_id('after-limit'), 'read_file', {path: '/a'})));
          connection.destroy();
          return response.status === 200 && jsonrpc_messages(response.body).length === 1;
        }, {what: 'a call served after the held connections closed'});
      });

  test(
      'serves a normal call after every refusal; clear_session never reached the upstream',
      async () => {
        await scene.normal_call();
        const calls = await scene.calls();
        assert.equal(calls.tools.clear_session ?? 0, 0, JSON.stringify(calls));
      });
});
