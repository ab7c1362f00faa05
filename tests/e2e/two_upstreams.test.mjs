// Named upstreams (issues #13 and #15): one gateway in front of two MCP servers at once, the counting SDK
// server over Streamable HTTP at /files and the Python interpreter stand-in over stdio at
// /python, each reached through its own pool, each under its own policy for the same grant.
import assert from 'node:assert/strict';
import {createHash, randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, skip_without_gateway, source_root, start_counting_upstream, start_gateway, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

const interpreter = path.join(source_root, 'tests', 'fixtures', 'python_interpreter_server.py');

function sha256_hex(text) { return createHash('sha256').update(text).digest('hex'); }

async function audit_lines(file) {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function call(client, name, args = {}) {
  return client.callTool({name, arguments: args}, undefined, request_options);
}

describe('two upstreams, one HTTP and one stdio, on two paths', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  let gateway = null;
  let config = null;
  let config_value = null;
  let audit = null;
  const key = randomBytes(24).toString('base64url');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-two-'));
    upstream = await start_counting_upstream();
    // The grant's own policy (for /files): write_file is denied.
    await writeFile(path.join(dir, 'base.json'), JSON.stringify({
      write_file: {deny_if: [{conditions: [], on_deny: 'No writes to the file server.'}]},
    }));
    // Its policy for the python upstream: clear_session denied, two runs an hour.
    await writeFile(path.join(dir, 'python.json'), JSON.stringify({
      clear_session: {deny_if: [{conditions: [], on_deny: 'Blocked by default. Requires approval.'}]},
      run_python_code: {limits: [{counter: 'runs', window: 'hour', max: 2, scope: 'grant'}]},
    }));
    config = path.join(dir, 'gateway.json');
    audit = path.join(dir, 'audit.log');
    config_value = {
      // Both shapes of a named upstream: "upstreams" (the upstream object with its path) and
      // "servers" (the upstream beside the server's own keys).
      upstreams: {files: {url: upstream.url, path: '/files'}},
      servers: {
        python: {
          upstream: {command: ['python3', interpreter, '--dir', path.join(dir, 'work')]},
          path: '/python',
        },
      },
      identities: [{name: 'alice', key_sha256: sha256_hex(key), grant: 'agents'}],
      grants: {agents: {policy: 'base.json', servers: {python: 'python.json'}}},
      audit: {path: audit, flush_interval_ms: 10},
    };
    await writeFile(config, JSON.stringify(config_value));
    gateway = await start_gateway({config, endpoint_path: '/files'});
  });

  after(async () => {
    await stop_all(gateway, upstream);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  const at = (p) => new URL(p, gateway.url).href;

  test('the HTTP upstream at /files, under the grant\'s own policy', {timeout: 60_000}, async () => {
    const {client} = await connect_client(at('/files'), {key});
    try {
      assert.equal(client.getServerVersion()?.name, 'e2e-counting-server');
      assert.equal(text_of(await call(client, 'read_file', {path: '/a'})), 'contents of /a');
      const denied = await call(client, 'write_file', {path: '/a', content: 'x'});
      assert.equal(denied.isError, true);
      assert.deepEqual(denied.content, [{type: 'text', text: '[POLICY DENIED] No writes to the file server.'}]);
      // The python policy's denial does not apply here.
      assert.equal(text_of(await call(client, 'clear_session')), 'session cleared');
      assert.equal((await upstream.calls()).tools.write_file ?? 0, 0);
    } finally {
      await client.close();
    }
  });

  test('the stdio upstream at /python, under the grant\'s policy for it', {timeout: 60_000},
       async () => {
         const {client} = await connect_client(at('/python'), {key});
         try {
           assert.equal(client.getServerVersion()?.name, 'python-interpreter');
           for (let i = 0; i < 2; ++i)
             assert.match(text_of(await call(client, 'run_python_code', {code: '6 * 7'})), /42/);
           const over = await call(client, 'run_python_code', {code: '1'});
           assert.equal(over.structuredContent?.decision, 'rate_limited', text_of(over));
           const denied = await call(client, 'clear_session');
           assert.deepEqual(denied.structuredContent?.decision, 'denied');
           // The base policy's write_file denial does not apply here.
           const wrote = await call(client, 'write_file',
                                    {file_path: 'note.txt', content: 'x', overwrite: true});
           assert.match(text_of(wrote), /^Successfully wrote/);
         } finally {
           await client.close();
         }
       });

  test('a path no upstream serves is 404', async () => {
    // (/mcp is the federated endpoint here: the config has servers.)
    const reply = await fetch(at('/nothing'), {
      method: 'POST',
      headers: {'content-type': 'application/json', 'accept': 'application/json, text/event-stream',
                'authorization': `Bearer ${key}`},
      body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'ping'}),
    });
    assert.equal(reply.status, 404);
  });

  test('every audit line names the upstream it was for', {timeout: 30_000}, async () => {
    // By now /files denied write_file, /python allowed one and rate-limited a run, and /nothing
    // was a 404. Audit lines are written off the request path, so wait for all of them.
    const lines = await poll(async () => {
      const all = await audit_lines(audit);
      return all.some((l) => l.decision === 'rate_limited') &&
                     all.some((l) => l.tool === 'write_file' && l.decision === 'denied') &&
                     all.some((l) => l.tool === 'write_file' && l.decision === 'allowed') &&
                     all.some((l) => l.rule === 'path')
                 ? all
                 : null;
    }, {what: 'the audit lines of the calls above'});
    const denied_write = lines.find((l) => l.tool === 'write_file' && l.decision === 'denied');
    assert.equal(denied_write.server, 'files');
    assert.equal(lines.find((l) => l.decision === 'rate_limited').server, 'python');
    const python_write = lines.find((l) => l.tool === 'write_file' && l.decision === 'allowed');
    assert.equal(python_write.server, 'python');
    for (const l of lines.filter((l) => l.method === 'tools/call')) assert.ok(['files', 'python'].includes(l.server), JSON.stringify(l));
    const not_found = lines.find((l) => l.rule === 'path');
    assert.equal(not_found.server, null);
    assert.equal(not_found.decision, 'invalid');
  });

  test('a reload that moves an upstream says it takes effect at the next start', {timeout: 30_000},
       async () => {
         const moved = structuredClone(config_value);
         moved.upstreams.files.path = '/elsewhere';
         moved.servers.python.upstream.max_processes = 3;
         await writeFile(config, JSON.stringify(moved));
         const path_said = gateway.process.wait_for_line(
             /^mcpgate: SIGHUP: upstreams\.files\.path changed; it takes effect at the next start/);
         const stdio_said = gateway.process.wait_for_line(
             /^mcpgate: SIGHUP: servers\.python changed; it takes effect at the next start/);
         const reloaded = gateway.process.wait_for_line(/^mcpgate: SIGHUP: reloaded \(generation 2\)/);
         process.kill(gateway.process.pid, 'SIGHUP');
         await path_said;
         await stdio_said;
         await reloaded;
         // The running routes stay.
         const {client} = await connect_client(at('/files'), {key});
         assert.equal(text_of(await call(client, 'read_file', {path: '/b'})), 'contents of /b');
         await client.close();
       });
});
