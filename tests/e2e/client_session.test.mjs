// An MCP client built on the official TypeScript SDK (Client + StreamableHTTPClientTransport)
// holding sessions with server-everything through the gateway: the handshake, streamed progress,
// requests from the server to the client (on a tool call's stream and on the GET stream), and
// session termination with DELETE.
import {CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema,} from '@modelcontextprotocol/sdk/types.js';
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {poll, skip_without_gateway, start_gateway, start_upstream, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

// POSTs a tools/list request on session `session_id` without the SDK, which would refuse to
// reuse a terminated session, and returns { status, body } with the body parsed as JSON when
// it is JSON.
async function post_tools_list(url, session_id, protocol_version) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'accept': 'application/json, text/event-stream',
      'mcp-session-id': session_id,
      'mcp-protocol-version': protocol_version,
    },
    body: JSON.stringify({jsonrpc: '2.0', id: 'after-delete', method: 'tools/list'}),
    signal: AbortSignal.timeout(request_options.timeout),
  });
  const text = await response.text();
  let body = text;
  if ((response.headers.get('content-type') ?? '').startsWith('application/json'))
    body = JSON.parse(text);
  return {status: response.status, body};
}

// Opens a session at `url`, checks that a raw request on it works, ends it with the SDK's
// DELETE, and returns what the same raw request gets afterwards.
async function request_after_delete(url) {
  const {client, transport} = await connect_client(url);
  try {
    const session_id = transport.sessionId;
    assert.ok(session_id, `no Mcp-Session-Id from ${url}`);
    const before_delete = await post_tools_list(url, session_id, transport.protocolVersion);
    assert.equal(
        before_delete.status, 200,
        `tools/list on a live session at ${url}: ${JSON.stringify(before_delete)}`);
    await transport.terminateSession();
    assert.equal(transport.sessionId, undefined, 'the SDK still holds the session after DELETE');
    return await post_tools_list(url, session_id, transport.protocolVersion);
  } finally {
    await client.close();
  }
}

describe('MCP client session through the gateway', {skip: skip_without_gateway}, () => {
  let upstream = null;
  let gateway = null;

  before(async () => {
    upstream = await start_upstream();
    gateway = await start_gateway({upstream_url: upstream.url});
  });

  after(async () => {
    await stop_all(gateway, upstream);
  });

  test(
      'initializes, lists tools and calls one through the gateway', {timeout: 60_000}, async () => {
        const {client, transport} = await connect_client(gateway.url);
        try {
          assert.equal(client.getServerVersion()?.name, 'mcp-servers/everything');
          assert.ok(
              transport.sessionId, 'the gateway did not pass the Mcp-Session-Id header through');
          const {tools} = await client.listTools({}, request_options);
          const names = tools.map((tool) => tool.name);
          for (const expected of ['echo', 'trigger-long-running-operation']) {
            assert.ok(
                names.includes(expected), `tools/list lacks ${expected}: ${names.join(', ')}`);
          }
          const echoed = await client.callTool(
              {name: 'echo', arguments: {message: 'through mcpgate'}}, undefined, request_options);
          assert.equal(text_of(echoed), 'Echo: through mcpgate');
        } finally {
          await client.close();
        }
      });

  test(
      'delivers each progress notification in order, as the tool runs, before the result',
      {timeout: 60_000}, async () => {
        const steps = 4;
        const duration_seconds = 2;
        const step_ms = (duration_seconds * 1000) / steps;
        const {client} = await connect_client(gateway.url);
        try {
          const progress = [];
          const started = performance.now();
          const result = await client.callTool(
              {
                name: 'trigger-long-running-operation',
                arguments: {duration: duration_seconds, steps}
              },
              undefined, {
                ...request_options,
                onprogress: ({progress: value, total}) => {
                  progress.push({value, total, at_ms: performance.now() - started});
                },
              });
          const result_at_ms = performance.now() - started;
          const seen_before_result = progress.length;

          assert.match(
              text_of(result),
              /Long running operation completed\. Duration: 2 seconds, Steps: 4\./);
          const timeline = JSON.stringify({progress, result_at_ms});
          assert.equal(seen_before_result, steps, `progress before the result: ${timeline}`);
          assert.deepEqual(progress.map(({value}) => value), [1, 2, 3, 4]);
          assert.deepEqual(progress.map(({total}) => total), [steps, steps, steps, steps]);
          // The server sends the first notification one step in and the result `steps` steps in;
          // a gateway that buffered the response stream would deliver them together.
          const lead_ms = result_at_ms - progress[0].at_ms;
          assert.ok(
              lead_ms >= 1.5 * step_ms, `the stream was not forwarded as written: ${timeline}`);
        } finally {
          await client.close();
        }
      });

  test(
      'carries a sampling request to the client and its answer back to the tool', {timeout: 60_000},
      async () => {
        const marker = `sample-${process.pid}-${Date.now()}`;
        const sampling_requests = [];
        const {client} = await connect_client(gateway.url, {
          capabilities: {sampling: {}},
          install: (c) => c.setRequestHandler(
              CreateMessageRequestSchema,
              (request) => {
                sampling_requests.push(request.params);
                return {
                  model: 'e2e-model',
                  role: 'assistant',
                  content: {type: 'text', text: `answer to ${marker}`},
                  stopReason: 'endTurn',
                };
              }),
        });
        try {
          const result = await client.callTool(
              {name: 'trigger-sampling-request', arguments: {prompt: marker, maxTokens: 32}},
              undefined, request_options);
          assert.equal(sampling_requests.length, 1);
          assert.equal(sampling_requests[0].maxTokens, 32);
          assert.match(sampling_requests[0].messages[0].content.text, new RegExp(marker));
          const text = text_of(result);
          assert.match(text, new RegExp(`answer to ${marker}`));
          assert.match(text, /e2e-model/);
        } finally {
          await client.close();
        }
      });

  test(
      'carries an elicitation request to the client and its answer back to the tool',
      {timeout: 60_000}, async () => {
        const marker = `name-${process.pid}-${Date.now()}`;
        let elicitations = 0;
        const {client} = await connect_client(gateway.url, {
          capabilities: {elicitation: {form: {}}},
          install: (c) => c.setRequestHandler(
              ElicitRequestSchema,
              () => {
                elicitations += 1;
                return {action: 'accept', content: {name: marker, check: true}};
              }),
        });
        try {
          const result = await client.callTool(
              {name: 'trigger-elicitation-request', arguments: {}}, undefined, request_options);
          assert.equal(elicitations, 1);
          const text = text_of(result);
          assert.match(text, new RegExp(`- Name: ${marker}`));
          assert.match(text, /- Agreed to terms: true/);
        } finally {
          await client.close();
        }
      });

  test(
      'carries a roots request on the GET stream and the client\'s roots back to the server',
      {timeout: 60_000}, async () => {
        const roots = [
          {uri: 'file:///e2e/alpha', name: 'alpha'},
          {uri: 'file:///e2e/beta', name: 'beta'},
        ];
        let roots_requests = 0;
        const log_lines = [];
        const {client} = await connect_client(gateway.url, {
          capabilities: {roots: {listChanged: true}},
          install: (c) => {
            c.setRequestHandler(ListRootsRequestSchema, () => {
              roots_requests += 1;
              return {roots};
            });
            c.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
              log_lines.push(String(notification.params.data));
            });
          },
        });
        try {
          // server-everything asks for roots 350 ms after the handshake, on the GET stream (a
          // request unrelated to any client request has no other way to travel). A request sent
          // before that stream is open is dropped, so a roots/list_changed notification asks
          // again until one arrives.
          let last_nudge_ms = performance.now();
          await poll(async () => {
            if (roots_requests > 0) return true;
            if (performance.now() - last_nudge_ms > 1_000) {
              last_nudge_ms = performance.now();
              await client.sendRootsListChanged();
            }
            return false;
          }, {what: 'a roots/list request from the server on the GET stream', timeout_ms: 15_000});

          // The server acknowledges the client's answer with a log message, again on the GET
          // stream.
          await poll(
              () => log_lines.some(
                  (line) => line.includes('Roots updated: 2 root(s) received from client')),
              {what: 'the server\'s log message acknowledging the roots', timeout_ms: 15_000});
          const result = await client.callTool(
              {name: 'get-roots-list', arguments: {}}, undefined, request_options);
          const text = text_of(result);
          for (const {uri} of roots) assert.match(text, new RegExp(uri));
        } finally {
          await client.close();
        }
      });

  test(
      'ends a session on DELETE: later requests on it get the upstream\'s unknown-session status',
      {timeout: 60_000}, async () => {
        // server-everything answers requests on an ended session with its own status (400 in
        // 2026.8.31, where the specification asks for 404), so the direct answer is the reference.
        const direct = await request_after_delete(upstream.url);
        assert.ok(
            direct.status >= 400 && direct.status < 500,
            `the upstream accepted a request on an ended session: ${JSON.stringify(direct)}`);
        const through_gateway = await request_after_delete(gateway.url);
        assert.deepEqual(through_gateway, direct);
      });

  test(
      'exits with status 0 on SIGTERM, having printed its listening line once', {timeout: 30_000},
      async () => {
        const exit = await gateway.stop({signal: 'SIGTERM', timeout_ms: 10_000});
        assert.deepEqual(exit, {code: 0, signal: null, killed: false}, gateway.process.describe());
        assert.equal(gateway.listening_line_count(), 1, gateway.process.describe());
      });
});
