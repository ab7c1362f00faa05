// What a new operator meets in the first hour, following the README (issue #20): an SDK client
// at protocol 2025-11-25 listing tools through a policy that filters tools/list in front of
// server-everything, whose SSE replies open with a priming event; a second gateway started on a
// port one already holds; and gateway_us in the audit log.
import assert from 'node:assert/strict';
import {execFile, spawn} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {gateway_bin, poll, read_metrics, skip_without_gateway, start_gateway, start_upstream, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

const seed_policy = `{
  "clear_session": { "deny_if": [ { "conditions": [], "on_deny": "Blocked by default. Requires approval." } ] },
  "write_file": { "limits": [ { "counter": "write_file_per_hour", "window": "hour", "max": 30, "scope": "grant" } ] },
  "list_directory": { "limits": [ { "counter": "list_directory_per_minute", "window": "minute", "max": 60, "scope": "grant" } ] }
}
`;

function sha256_hex(text) { return createHash('sha256').update(text).digest('hex'); }

async function audit_lines(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  return text.slice(0, text.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line));
}

// Runs the gateway binary with `args` to its exit (it must exit within `timeout_ms`); resolves
// with { code, stderr }.
function run_to_exit(args, timeout_ms = 15_000) {
  return new Promise((resolve) => {
    execFile(gateway_bin, args, {timeout: timeout_ms}, (error, stdout, stderr) => {
      resolve({code: error ? (error.code ?? error.signal) : 0, stderr});
    });
  });
}

describe('tools/list through a filtering policy at 2025-11-25', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  let gateway = null;
  let hiding_gateway = null;
  const key = randomBytes(24).toString('base64url');

  async function config_with(file_name, policy_text, audit_name) {
    await writeFile(path.join(dir, `${file_name}.policy.json`), policy_text);
    const config = path.join(dir, `${file_name}.json`);
    await writeFile(config, JSON.stringify({
      upstream: upstream.url,
      identities: [{name: 'alice', key_sha256: sha256_hex(key), grant: 'agents'}],
      grants: {agents: {policy: `${file_name}.policy.json`}},
      audit: {path: path.join(dir, audit_name), flush_interval_ms: 10},
    }));
    return config;
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-first-hour-'));
    upstream = await start_upstream();
    gateway = await start_gateway({
      config: await config_with('seed', seed_policy, 'seed-audit.log'),
      admin: true,
    });
    hiding_gateway = await start_gateway({
      config: await config_with('hiding', JSON.stringify({hide: ['echo']}), 'hiding-audit.log'),
      admin: true,
    });
  });

  after(async () => {
    await stop_all(gateway, hiding_gateway, upstream);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test(
      'the seed policy lists every tool of server-everything, priming event and all',
      {timeout: 60_000}, async () => {
        const direct = await connect_client(upstream.url);
        const expected = (await direct.client.listTools({}, request_options))
                             .tools.map((tool) => tool.name)
                             .sort();
        await direct.client.close();

        const {client, transport} = await connect_client(gateway.url, {key});
        try {
          assert.equal(transport.protocolVersion, '2025-11-25');
          const {tools} = await client.listTools({}, request_options);
          assert.deepEqual(tools.map((tool) => tool.name).sort(), expected);

          const line = await poll(
              async () => (await audit_lines(path.join(dir, 'seed-audit.log')))
                              .find((l) => l.method === 'tools/list'),
              {what: 'the audit line of tools/list'});
          assert.equal(line.decision, 'allowed', JSON.stringify(line));
          assert.equal(line.upstream_status, 200, JSON.stringify(line));
          assert.equal(line.error, undefined, JSON.stringify(line));
        } finally {
          await client.close();
        }
        // Every stream the exchanges opened has ended: the gauge is back where it started.
        await poll(
            async () => (await read_metrics(gateway.admin_url)).get('mcpgate_open_sse_streams') === 0,
            {what: 'mcpgate_open_sse_streams to return to 0'});
      });

  test('gateway_us is the time the gateway added: above 0, below the whole exchange',
       {timeout: 60_000}, async () => {
         const {client} = await connect_client(gateway.url, {key});
         try {
           const started = process.hrtime.bigint();
           const echoed = await client.callTool(
               {name: 'echo', arguments: {message: 'first hour'}}, undefined, request_options);
           const round_trip_us = Number((process.hrtime.bigint() - started) / 1000n);
           assert.match(text_of(echoed), /first hour/);
           const line = await poll(
               async () => (await audit_lines(path.join(dir, 'seed-audit.log')))
                               .find((l) => l.tool === 'echo'),
               {what: 'the audit line of the echo call'});
           assert.equal(line.decision, 'allowed', JSON.stringify(line));
           assert.ok(line.gateway_us > 0, JSON.stringify(line));
           assert.ok(line.upstream_us > 0, JSON.stringify(line));
           assert.ok(
               line.gateway_us + line.upstream_us <= round_trip_us,
               `${JSON.stringify(line)} against a round trip of ${round_trip_us} us`);
         } finally {
           await client.close();
         }
         const metrics = await read_metrics(gateway.admin_url);
         assert.ok(metrics.get('mcpgate_gateway_latency_seconds_sum') > 0,
                   'mcpgate_gateway_latency_seconds sums to 0');
       });

  test('a hidden tool is missing, every other tool is listed', {timeout: 60_000}, async () => {
    const {client} = await connect_client(hiding_gateway.url, {key});
    try {
      const names = (await client.listTools({}, request_options)).tools.map((tool) => tool.name);
      assert.ok(!names.includes('echo'), names.join(', '));
      assert.ok(names.includes('get-sum'), names.join(', '));
    } finally {
      await client.close();
    }
    await poll(
        async () =>
            (await read_metrics(hiding_gateway.admin_url)).get('mcpgate_open_sse_streams') === 0,
        {what: 'mcpgate_open_sse_streams to return to 0'});
  });

  test('a stream the client drops mid-way leaves the gauge at its true value', {timeout: 60_000},
       async () => {
         const {client} = await connect_client(gateway.url, {key});
         // A long-running operation streams progress; the client goes away during it.
         const running = client
                             .callTool(
                                 {name: 'trigger-long-running-operation',
                                  arguments: {duration: 5, steps: 5}},
                                 undefined, {...request_options, onprogress: () => {}})
                             .catch(() => null);
         await poll(
             async () =>
                 (await read_metrics(gateway.admin_url)).get('mcpgate_open_sse_streams') >= 1,
             {what: 'the long-running call to open its stream'});
         await client.close();
         await running;
         await poll(
             async () =>
                 (await read_metrics(gateway.admin_url)).get('mcpgate_open_sse_streams') === 0,
             {what: 'mcpgate_open_sse_streams to return to 0 after the client left'});
       });
});

describe('a second gateway on a port one already holds', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  let gateway = null;
  const key = randomBytes(24).toString('base64url');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-port-'));
    upstream = await start_upstream();
    const config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({
      upstream: upstream.url,
      shards: 2,
      identities: [{name: 'alice', key_sha256: sha256_hex(key), grant: 'agents'}],
      grants: {agents: {}},
    }));
    gateway = await start_gateway({config, admin: true});
  });

  after(async () => {
    await stop_all(gateway, upstream);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  async function unauthenticated_statuses(count) {
    const statuses = [];
    for (let i = 0; i < count; ++i) {
      const response = await fetch(gateway.url, {
        method: 'POST',
        headers: {'content-type': 'application/json', 'accept': 'application/json, text/event-stream'},
        body: JSON.stringify({jsonrpc: '2.0', id: i, method: 'ping'}),
        signal: AbortSignal.timeout(10_000),
      });
      await response.arrayBuffer();
      statuses.push(response.status);
    }
    return statuses;
  }

  test('exits 1 naming the address, and the first keeps every connection', {timeout: 30_000},
       async () => {
         const address = `127.0.0.1:${gateway.port}`;
         const second = await run_to_exit(['--listen', address, '--upstream', upstream.url]);
         assert.equal(second.code, 1, second.stderr);
         assert.match(second.stderr, /address already in use/i);
         assert.ok(second.stderr.includes(address), second.stderr);
         assert.deepEqual(await unauthenticated_statuses(12), Array(12).fill(401));
       });

  test('the admin address too', {timeout: 30_000}, async () => {
    const admin = new URL(gateway.admin_url).host;
    const second = await run_to_exit(
        ['--listen', '127.0.0.1:0', '--upstream', upstream.url, '--admin', admin]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /address already in use/i);
    assert.ok(second.stderr.includes(admin), second.stderr);
  });

  test('a process joining the listener\'s SO_REUSEPORT group receives no connection',
       {timeout: 30_000}, async () => {
         // Python, because it can set SO_REUSEPORT on a socket before binding it.
         const script = `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", ${gateway.port}))
s.listen(64)
print("joined", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
    c.close()
`;
         const intruder = spawn('python3', ['-c', script], {stdio: ['ignore', 'pipe', 'pipe']});
         try {
           let output = '';
           intruder.stdout.on('data', (data) => { output += data; });
           intruder.stderr.on('data', (data) => { output += data; });
           await poll(() => output.includes('joined'), {what: `the intruder to bind (${output})`});
           assert.deepEqual(await unauthenticated_statuses(24), Array(24).fill(401));
         } finally {
           intruder.kill('SIGKILL');
         }
       });
});
