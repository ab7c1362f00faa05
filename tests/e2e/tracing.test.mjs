// Distributed tracing (issue #21): W3C trace context from the traceparent header or from
// params._meta.traceparent (2026-07-28) is continued, the forwarded request carries the
// gateway's upstream span as its parent, and the spans (the gateway's, the policy decision,
// the upstream call) reach an OTLP/HTTP receiver. The receiver and the upstream are small HTTP
// servers of this test: the receiver keeps every export, the upstream every traceparent.
import assert from 'node:assert/strict';
import {randomBytes} from 'node:crypto';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, read_metrics, skip_without_gateway, start_gateway, stop_all} from './lib/harness.mjs';

function listen(handler) {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function read_body(request) {
  return new Promise((resolve) => {
    const chunks = [];
    request.on('data', (c) => chunks.push(c));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

const hex = (bytes) => randomBytes(bytes).toString('hex');

describe('tracing through the gateway', {skip: skip_without_gateway}, () => {
  let dir = null;
  let receiver = null;
  let upstream = null;
  let gateway = null;
  const exports = [];   // every span the receiver got
  const upstream_seen = [];  // {traceparent, method, name} per request the upstream got

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-tracing-'));
    receiver = await listen(async (request, response) => {
      const body = await read_body(request);
      if (request.url === '/v1/traces' && request.method === 'POST') {
        for (const rs of JSON.parse(body).resourceSpans)
          for (const ss of rs.scopeSpans)
            for (const span of ss.spans) exports.push({...span, service: rs.resource.attributes});
      }
      response.writeHead(200, {'content-type': 'application/json'});
      response.end('{}');
    });
    upstream = await listen(async (request, response) => {
      const message = JSON.parse(await read_body(request));
      upstream_seen.push({traceparent: request.headers.traceparent, method: message.method,
                          name: message.params?.name});
      if (message.id === undefined) {
        response.writeHead(202);
        response.end();
        return;
      }
      const result = message.method === 'tools/call'
                         ? {content: [{type: 'text', text: 'ok'}]}
                         : {};
      response.writeHead(200, {'content-type': 'application/json'});
      response.end(JSON.stringify({jsonrpc: '2.0', id: message.id, result}));
    });
    await writeFile(path.join(dir, 'policy.json'), JSON.stringify({
      danger: {deny_if: [{conditions: [{path: 'args.x', op: 'exists'}], on_deny: 'No.'}]},
    }));
    const config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({
      upstream: `http://127.0.0.1:${upstream.address().port}/mcp`,
      policy: 'policy.json',
      tracing: {otlp_http: `http://127.0.0.1:${receiver.address().port}/v1/traces`,
                service_name: 'mcpgate-e2e', flush_interval_ms: 20},
    }));
    gateway = await start_gateway({config, admin: true});
  });

  after(async () => {
    await stop_all(gateway);
    for (const server of [receiver, upstream]) if (server) server.close();
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  async function call(tool, {traceparent, meta_traceparent, args = {}} = {}) {
    const headers = {'content-type': 'application/json', accept: 'application/json, text/event-stream',
                     'mcp-protocol-version': '2025-06-18'};
    if (traceparent) headers.traceparent = traceparent;
    const params = {name: tool, arguments: args};
    if (meta_traceparent) params._meta = {traceparent: meta_traceparent};
    const response = await fetch(gateway.url, {
      method: 'POST', headers,
      body: JSON.stringify({jsonrpc: '2.0', id: hex(4), method: 'tools/call', params}),
    });
    return response.json();
  }

  const spans_of = (trace) => poll(() => {
    const spans = exports.filter((s) => s.traceId === trace);
    return spans.length >= 2 ? spans : null;
  }, {what: `the spans of trace ${trace}`});

  test('continues the client\'s traceparent: the upstream\'s parent is the gateway\'s upstream span',
       {timeout: 30_000}, async () => {
         const trace = hex(16), parent = hex(8);
         const reply = await call('safe', {traceparent: `00-${trace}-${parent}-01`});
         assert.equal(reply.result.content[0].text, 'ok');
         const seen = upstream_seen.at(-1).traceparent;
         const [, seen_trace, seen_parent, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(\d\d)$/.exec(seen);
         assert.equal(seen_trace, trace);
         assert.notEqual(seen_parent, parent, 'the upstream sees the gateway\'s span, not the client\'s');
         assert.equal(flags, '01');
         const spans = await poll(async () => {
           const s = exports.filter((x) => x.traceId === trace);
           return s.length >= 3 ? s : null;
         }, {what: 'three spans'});
         const server = spans.find((s) => s.kind === 2);
         const decision = spans.find((s) => s.name === 'policy decision');
         const client = spans.find((s) => s.kind === 3);
         assert.equal(server.parentSpanId, parent);
         assert.equal(server.name, 'mcpgate tools/call');
         assert.equal(decision.parentSpanId, server.spanId);
         assert.equal(client.parentSpanId, server.spanId);
         assert.equal(client.spanId, seen_parent);
         const attribute = (span, key) => span.attributes.find((a) => a.key === key)?.value;
         assert.equal(attribute(server, 'gen_ai.tool.name').stringValue, 'safe');
         assert.equal(attribute(server, 'mcpgate.decision').stringValue, 'allowed');
         assert.equal(attribute(client, 'http.response.status_code').intValue, '200');
         assert.ok(BigInt(server.startTimeUnixNano) <= BigInt(client.startTimeUnixNano));
         assert.ok(BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano));
         assert.deepEqual(server.service, [{key: 'service.name', value: {stringValue: 'mcpgate-e2e'}}]);
       });

  test('continues params._meta.traceparent when there is no header', {timeout: 30_000},
       async () => {
         const trace = hex(16), parent = hex(8);
         await call('safe', {meta_traceparent: `00-${trace}-${parent}-01`});
         assert.match(upstream_seen.at(-1).traceparent, new RegExp(`^00-${trace}-`));
         const spans = await spans_of(trace);
         assert.equal(spans.find((s) => s.kind === 2).parentSpanId, parent);
       });

  test('a denied call has its spans, with the decision and rule, and nothing upstream',
       {timeout: 30_000}, async () => {
         const trace = hex(16);
         const before = upstream_seen.length;
         const reply = await call('danger', {traceparent: `00-${trace}-${hex(8)}-01`, args: {x: 1}});
         assert.equal(reply.result.isError, true);
         assert.equal(upstream_seen.length, before);
         const spans = await spans_of(trace);
         assert.equal(spans.length, 2, 'no upstream span for a call never forwarded');
         const server = spans.find((s) => s.kind === 2);
         assert.equal(server.attributes.find((a) => a.key === 'mcpgate.decision').value.stringValue,
                      'denied');
         assert.equal(server.attributes.find((a) => a.key === 'mcpgate.rule').value.stringValue,
                      'tools.danger.deny_if[0]');
         assert.equal(server.status.code, 2);
       });

  test('without a parent a trace starts; an unsampled parent is continued, not exported',
       {timeout: 30_000}, async () => {
         await call('safe');
         const fresh = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(upstream_seen.at(-1).traceparent);
         assert.ok(fresh, upstream_seen.at(-1).traceparent);
         const spans = await spans_of(fresh[1]);
         assert.equal(spans.find((s) => s.kind === 2).parentSpanId, undefined);

         const quiet = hex(16);
         await call('safe', {traceparent: `00-${quiet}-${hex(8)}-00`});
         assert.match(upstream_seen.at(-1).traceparent, new RegExp(`^00-${quiet}-[0-9a-f]{16}-00$`));
         // A garbage traceparent is not continued: a new trace, sampled.
         await call('safe', {traceparent: '00-zz-not-a-parent'});
         assert.doesNotMatch(upstream_seen.at(-1).traceparent, /zz/);
         const metrics = await poll(async () => {
           const m = await read_metrics(gateway.admin_url);
           return m.get('mcpgate_trace_spans_exported_total') >= 10 ? m : null;
         }, {what: 'the exported spans counted'});
         assert.equal(metrics.get('mcpgate_trace_export_failures_total'), 0);
         assert.equal(exports.filter((s) => s.traceId === quiet).length, 0);
       });
});
