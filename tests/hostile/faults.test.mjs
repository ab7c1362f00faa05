// Upstream faults through the gateway (issue #7): a real upstream (the counting SDK server, a
// process of its own) killed with calls in flight, restarted on its port, stopped with SIGSTOP
// and continued; and a scripted upstream that resets mid-response, answers malformed heads and
// ends an SSE stream early. After each fault: the client got a well-formed JSON-RPC error or a
// cleanly ended stream, the audit line says upstream_error, the gateway kept answering what it
// answers itself, and the next normal call succeeds.
//
// The tests of each suite run in order and share their processes: each states what it starts
// from.
import assert from 'node:assert/strict';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, skip_without_gateway, start_counting_upstream, start_gateway, stop_all} from '../e2e/lib/harness.mjs';

import {admin_port, audit_line_for, jsonrpc_messages, post_request, queued_requests_at, raw_exchange, signal_group, start_counting_upstream_on} from './lib/faults_probes.mjs';
import {raw_behaviour, start_raw_upstream} from './lib/faults_raw_upstream.mjs';

const protocol_version = '2025-06-18';
// Long enough that, under ASan on a loaded machine, the gateway answers a denial and /metrics
// well before it gives up on the stalled call.
const stall_timeout_ms = 1500;
const denial_text = '[POLICY DENIED] Only an operator clears the session.';

// The gateways' policy: clear_session is always denied, so a call to it is answered by the
// gateway alone whatever state the upstream is in.
const policy = JSON.stringify({
  clear_session: {deny_if: [{conditions: [], on_deny: 'Only an operator clears the session.'}]},
});

async function write_gateway_config(dir, name, upstream_url, limits) {
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify({
    upstream: upstream_url,
    policy: 'policy.json',
    audit: {path: path.join(dir, `${name}-audit.log`), flush_interval_ms: 10},
    admin: '127.0.0.1:0',
    shards: 2,
    limits,
  }));
  return {config: file, audit: path.join(dir, `${name}-audit.log`)};
}

const read_args = {
  path: '/srv/notes.txt'
};

function tools_call(id, name = 'read_file', args = read_args) {
  return {jsonrpc: '2.0', id, method: 'tools/call', params: {name, arguments: args}};
}

const initialize = {
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: {
    protocolVersion: protocol_version,
    capabilities: {},
    clientInfo: {name: 'faults', version: '1'}
  },
};

// Opens an MCP session through `gateway` and returns its id.
async function open_session(gateway) {
  const reply = await raw_exchange(gateway.port, post_request(gateway.port, initialize));
  assert.equal(reply.status, 200, reply.raw);
  const session = reply.headers['mcp-session-id'];
  assert.ok(session, `no session id in ${reply.raw}`);
  return session;
}

function session_headers(session) {
  return {'Mcp-Session-Id': session, 'MCP-Protocol-Version': protocol_version};
}

// Sends a tools/call over a fresh connection; resolves with the raw exchange and, when the body
// is a complete JSON-RPC answer, its message for `id`.
async function call(gateway, id, {session, name, args, timeout_ms} = {}) {
  const headers = session ? session_headers(session) : {};
  const reply = await raw_exchange(
      gateway.port, post_request(gateway.port, tools_call(id, name, args), {headers}),
      {timeout_ms});
  const message =
      reply.complete ? jsonrpc_messages(reply.body).find((m) => m.id === id) : undefined;
  return {...reply, message};
}

// Asserts a gateway error reply: HTTP `status`, a JSON-RPC 2.0 error with `code` and the
// request's id, a JSON body whose length the head states.
function assert_gateway_error(reply, status, code, id) {
  assert.equal(reply.status, status, reply.raw);
  assert.equal(reply.headers['content-type'], 'application/json', reply.raw);
  assert.ok(reply.complete, `incomplete reply: ${reply.raw}`);
  assert.equal(reply.message?.jsonrpc, '2.0', reply.raw);
  assert.equal(reply.message?.error?.code, code, reply.raw);
  assert.equal(reply.message?.id, id, reply.raw);
}

function assert_success(reply, id) {
  assert.equal(reply.status, 200, reply.raw);
  assert.equal(reply.message?.id, id, reply.raw);
  assert.ok(reply.message?.result, `no result: ${reply.raw}`);
  assert.notEqual(reply.message.result.isError, true, reply.raw);
}

// The gateway answers a denied call itself: a result with isError and the policy's text.
async function assert_denied_by_gateway(gateway, id, session) {
  const reply = await call(gateway, id, {session, name: 'clear_session', args: {}});
  assert.equal(reply.status, 200, reply.raw);
  assert.equal(reply.message?.result?.isError, true, reply.raw);
  assert.equal(reply.message.result.content[0].text, denial_text, reply.raw);
}

// `error` is what the audit line says failed: refused, reset, timeout or malformed.
// A list allows any of them.
async function assert_audit_upstream_error(audit, id, error) {
  const line = await audit_line_for(audit, id);
  assert.equal(line.decision, 'upstream_error', JSON.stringify(line));
  assert.ok([error].flat().includes(line.error), JSON.stringify(line));
  assert.equal(line.method, 'tools/call', JSON.stringify(line));
  return line;
}

async function metrics_text(port) {
  const response =
      await fetch(`http://127.0.0.1:${port}/metrics`, {signal: AbortSignal.timeout(10_000)});
  assert.equal(response.status, 200);
  return response.text();
}

// Sums the samples of `name` whose labels include `label` (e.g. 'kind="timeout"').
function metric_sum(text, name, label) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) || !line.includes(label)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

// Runs `body`; on failure adds what the gateway printed and the end of its audit log, which
// tell which exchange went wrong.
async function with_context(gateway, audit, body) {
  try {
    await body();
  } catch (error) {
    const lines = await readFile(audit, 'utf8').catch(() => '');
    error.message += `\n${gateway.process.describe()}\n--- audit log, last lines ---\n${
        lines.split('\n').slice(-12).join('\n')}`;
    throw error;
  }
}

describe('a real upstream killed, restarted and stalled', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  // `gateway` waits long for the upstream (so calls stay in flight until the kill); `stall_gateway`
  // gives up after stall_timeout_ms. Both stand in front of the same upstream port.
  let gateway = null;
  let gateway_audit = null;
  let stall_gateway = null;
  let stall_audit = null;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-faults-'));
    await writeFile(path.join(dir, 'policy.json'), policy);
    upstream = await start_counting_upstream();
    const patient = await write_gateway_config(
        dir, 'patient', upstream.url, {upstream_response_timeout_ms: 20_000});
    const impatient = await write_gateway_config(
        dir, 'impatient', upstream.url, {upstream_response_timeout_ms: stall_timeout_ms});
    gateway = await start_gateway({config: patient.config});
    gateway_audit = patient.audit;
    stall_gateway = await start_gateway({config: impatient.config});
    stall_audit = impatient.audit;
  });

  after(async () => {
    if (upstream?.process && !upstream.process.has_exited) {
      try {
        signal_group(upstream.process, 'SIGCONT');
      } catch {
        // Already gone.
      }
    }
    await stop_all(gateway, stall_gateway, upstream);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test(
      'SIGKILL with calls in flight: each gets 502 -32030, audited as upstream_error',
      {timeout: 30_000},
      () => with_context(gateway, gateway_audit, async () => {
        const session = await open_session(gateway);
        assert_success(await call(gateway, 'before-kill', {session}), 'before-kill');

        // Stopped, the upstream cannot read: the kernel holds each forwarded request in its socket
        // buffers, which is how the test knows every call is in flight before the kill.
        signal_group(upstream.process, 'SIGSTOP');
        const ids = ['in-flight-1', 'in-flight-2', 'in-flight-3'];
        const replies = ids.map((id) => call(gateway, id, {session, timeout_ms: 20_000}));
        await poll(
            async () => (await queued_requests_at(upstream.port)) >= ids.length,
            {what: 'the three calls waiting in the stopped upstream\'s sockets'});
        signal_group(upstream.process, 'SIGKILL');
        await upstream.process.exited;

        for (const [i, reply] of (await Promise.all(replies)).entries()) {
          assert_gateway_error(reply, 502, -32030, ids[i]);
          assert.equal(reply.ended, 'open', 'a gateway error keeps the client connection');
        }
        // Reset on the connection the request was sent on, or refused when the gateway retried a
        // pooled connection that had not answered a byte and found the upstream gone.
        for (const id of ids) {
          await assert_audit_upstream_error(gateway_audit, id, ['reset', 'refused']);
        }
      }));

  test(
      'while the upstream is down: refused calls get 502, the gateway still answers denials and /metrics',
      {timeout: 30_000},
      () => with_context(gateway, gateway_audit, async () => {
        const reply = await call(gateway, 'while-down');
        assert_gateway_error(reply, 502, -32030, 'while-down');
        assert.match(reply.message.error.message, /refused/);
        await assert_audit_upstream_error(gateway_audit, 'while-down', 'refused');

        await assert_denied_by_gateway(gateway, 'denied-while-down');
        const denied = await audit_line_for(gateway_audit, 'denied-while-down');
        assert.equal(denied.decision, 'denied', JSON.stringify(denied));

        const metrics = await metrics_text(await admin_port(gateway));
        assert.ok(metric_sum(metrics, 'mcpgate_upstream_errors_total', 'kind=') >= 4, metrics);
      }));

  test(
      'restarted on the same port: the first calls after it succeed (the pool recovered)',
      {timeout: 30_000},
      () => with_context(gateway, gateway_audit, async () => {
        const port = upstream.port;
        upstream = await start_counting_upstream_on(port);
        assert.equal(upstream.port, port);

        // No retry loop: the first exchange after the restart must work, whatever the pool held.
        const session = await open_session(gateway);
        assert_success(await call(gateway, 'after-restart', {session}), 'after-restart');
        const audited = await audit_line_for(gateway_audit, 'after-restart');
        assert.equal(audited.decision, 'allowed', JSON.stringify(audited));
        assert.equal(audited.upstream_status, 200, JSON.stringify(audited));
      }));

  test(
      'SIGSTOP: a call gets 504 -32031 after upstream_response_timeout_ms while the gateway answers others; SIGCONT recovers',
      {timeout: 30_000},
      () => with_context(stall_gateway, stall_audit, async () => {
        const session = await open_session(stall_gateway);
        assert_success(await call(stall_gateway, 'before-stall', {session}), 'before-stall');
        const metrics_port = await admin_port(stall_gateway);
        const timeouts_before = metric_sum(
            await metrics_text(metrics_port), 'mcpgate_upstream_errors_total', 'kind="timeout"');

        signal_group(upstream.process, 'SIGSTOP');
        try {
          const started = Date.now();
          let stalled_done_at = null;
          const stalled = call(stall_gateway, 'stalled', {session}).then((reply) => {
            stalled_done_at = Date.now();
            return reply;
          });
          await poll(
              async () => (await queued_requests_at(upstream.port)) >= 1,
              {what: 'the call waiting in the stopped upstream\'s socket'});

          // Everyone else is still served while that call waits.
          await assert_denied_by_gateway(stall_gateway, 'denied-during-stall', session);
          const metrics = await metrics_text(metrics_port);
          assert.match(metrics, /^mcpgate_open_connections/m);
          assert.equal(
              stalled_done_at, null, 'the stalled call ended before the others were answered');

          const reply = await stalled;
          const waited = stalled_done_at - started;
          assert_gateway_error(reply, 504, -32031, 'stalled');
          assert.ok(waited >= stall_timeout_ms - 50, `answered after ${waited} ms`);
          assert.ok(waited < stall_timeout_ms + 5_000, `answered after ${waited} ms`);
          await assert_audit_upstream_error(stall_audit, 'stalled', 'timeout');
          const timeouts_after = metric_sum(
              await metrics_text(metrics_port), 'mcpgate_upstream_errors_total', 'kind="timeout"');
          assert.equal(timeouts_after, timeouts_before + 1);
        } finally {
          signal_group(upstream.process, 'SIGCONT');
        }

        assert_success(await call(stall_gateway, 'after-stall', {session}), 'after-stall');
        // The stalled call did reach the upstream, which ran it after SIGCONT and answered into
        // a closed socket: an upstream_error line does not mean the tool did not run.
        await poll(
            async () => (await upstream.calls()).tools.read_file >= 3,
            {what: 'the upstream to count before-stall, stalled and after-stall'});
      }));
});

const raw_response_timeout_ms = 1_000;

describe('a scripted upstream that misbehaves on the wire', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  let gateway = null;
  let audit = null;
  let next_id = 0;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-faults-raw-'));
    await writeFile(path.join(dir, 'policy.json'), policy);
    upstream = await start_raw_upstream();
    const written = await write_gateway_config(
        dir, 'raw', upstream.url, {upstream_response_timeout_ms: raw_response_timeout_ms});
    gateway = await start_gateway({config: written.config});
    audit = written.audit;
  });

  after(async () => {
    await stop_all(gateway);
    if (upstream) await upstream.close();
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  // After every fault: a normal call goes through and the gateway still answers denials.
  async function assert_recovered() {
    upstream.behave(raw_behaviour.ok);
    const id = `normal-${++next_id}`;
    assert_success(await call(gateway, id), id);
    await assert_denied_by_gateway(gateway, `denied-${next_id}`);
  }

  test('a reset before any response byte gives 502 -32030', {timeout: 20_000}, async () => {
    assert_success(await call(gateway, 'warm'), 'warm');  // leaves a pooled connection
    upstream.behave(raw_behaviour.reset_before_response);
    const reply = await call(gateway, 'reset-early');
    assert_gateway_error(reply, 502, -32030, 'reset-early');
    await assert_audit_upstream_error(audit, 'reset-early', 'reset');
    await assert_recovered();
  });

  test(
      'a reset mid-response ends the client connection cleanly after the bytes relayed',
      {timeout: 20_000}, async () => {
        upstream.behave(raw_behaviour.reset_mid_response);
        const reply = await raw_exchange(
            gateway.port, post_request(gateway.port, tools_call('reset-mid')),
            {wait_for_end: true});
        assert.equal(reply.status, 200, reply.raw);
        assert.equal(reply.complete, false, `the truncated body looks complete: ${reply.raw}`);
        assert.equal(reply.body, '{"jsonrpc":"2.0","id', reply.raw);  // the 20 bytes sent
        assert.equal(reply.ended, 'fin', 'the gateway ends the connection with a FIN, not a reset');
        const line = await assert_audit_upstream_error(audit, 'reset-mid', 'reset');
        assert.equal(line.upstream_status, 200, JSON.stringify(line));
        await assert_recovered();
      });

  // upstream_response_timeout_ms also bounds each wait between reads of a response body that is
  // not an event stream, so an upstream that stalls after its head cannot hold the client.
  test(
      'an upstream that stalls after its response head: the client stream ends within the ' +
          'response timeout',
      {timeout: 20_000}, async () => {
        upstream.behave(raw_behaviour.stall_mid_body);
        const reply = await raw_exchange(
            gateway.port, post_request(gateway.port, tools_call('stall-mid-body')),
            {wait_for_end: true, timeout_ms: raw_response_timeout_ms + 4_000});
        assert.equal(reply.status, 200, reply.raw);
        assert.equal(reply.complete, false, reply.raw);
        assert.equal(reply.body, '{"jsonrpc":"2.0","id', reply.raw);
        assert.equal(reply.ended, 'fin', 'the gateway ends the connection with a FIN, not a reset');
        await assert_audit_upstream_error(audit, 'stall-mid-body', 'timeout');
        await assert_recovered();
      });

  test('a malformed status line gives 502 -32033', {timeout: 20_000}, async () => {
    upstream.behave(raw_behaviour.malformed_status_line);
    const reply = await call(gateway, 'bad-status');
    assert_gateway_error(reply, 502, -32033, 'bad-status');
    await assert_audit_upstream_error(audit, 'bad-status', 'malformed');
    await assert_recovered();
  });

  test(
      'a response with both Content-Length and Transfer-Encoding gives 502 -32033',
      {timeout: 20_000}, async () => {
        upstream.behave(raw_behaviour.malformed_framing);
        const reply = await call(gateway, 'bad-framing');
        assert_gateway_error(reply, 502, -32033, 'bad-framing');
        await assert_audit_upstream_error(audit, 'bad-framing', 'malformed');
        await assert_recovered();
      });

  test(
      'an SSE stream the upstream closes early ends with its terminating chunk', {timeout: 20_000},
      async () => {
        upstream.behave(raw_behaviour.sse_closed_early);
        const reply = await raw_exchange(
            gateway.port, post_request(gateway.port, tools_call('sse-early')),
            {wait_for_end: true});
        assert.equal(reply.status, 200, reply.raw);
        assert.equal(reply.headers['content-type'], 'text/event-stream', reply.raw);
        assert.ok(reply.complete, `the stream lacks its terminating chunk: ${reply.raw}`);
        const [event] = jsonrpc_messages(reply.body);
        assert.equal(event.method, 'notifications/progress', reply.raw);
        assert.equal(reply.ended, 'fin', 'the gateway ends the connection with a FIN, not a reset');
        const line = await assert_audit_upstream_error(audit, 'sse-early', 'reset');
        assert.equal(line.upstream_status, 200, JSON.stringify(line));
        await assert_recovered();
      });
});
