// The federated endpoint (issue #15): one gateway in front of three real servers at once,
// server-everything over Streamable HTTP, server-filesystem over stdio and the Python
// interpreter stand-in over stdio. Through /mcp an SDK client sees every server's tools as
// <server>__<tool>, calls one of each, gets progress from one while another answers, and is
// denied by each server's own policy; through /mcp/<name> each server is itself. Killing a
// server leaves the other two serving: its tools leave the list, list_changed reaches the
// client, and they come back once it runs again.
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {ToolListChangedNotificationSchema} from '@modelcontextprotocol/sdk/types.js';

import {gateway_bin, package_file, poll, read_metrics, skip_without_gateway, source_root, start_gateway, start_upstream, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

const interpreter = path.join(source_root, 'tests', 'fixtures', 'python_interpreter_server.py');
const sha256_hex = (text) => createHash('sha256').update(text).digest('hex');

async function audit_lines(file) {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function call(client, name, args = {}, options = {}) {
  return client.callTool({name, arguments: args}, undefined, {...request_options, ...options});
}

async function tool_names(client) {
  const {tools} = await client.listTools(undefined, request_options);
  return tools.map((t) => t.name);
}

describe('the federated endpoint in front of three servers', {skip: skip_without_gateway}, () => {
  let dir = null;
  let everything = null;
  let gateway = null;
  let audit = null;
  const key = randomBytes(24).toString('base64url');
  const other_key = randomBytes(24).toString('base64url');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-federation-'));
    const files = path.join(dir, 'files');
    await mkdir(files);
    await writeFile(path.join(files, 'hello.txt'), 'hello from the file server\n');
    everything = await start_upstream();
    // Each server's own policy for the grant, under the server's own tool names.
    await writeFile(path.join(dir, 'everything.json'), JSON.stringify({
      'get-env': {deny_if: [{conditions: [], on_deny: 'No environment.'}]},
    }));
    await writeFile(path.join(dir, 'filesystem.json'), JSON.stringify({
      write_file: {deny_if: [{conditions: [], on_deny: 'Read-only.'}]},
    }));
    await writeFile(path.join(dir, 'python.json'), JSON.stringify({
      clear_session: {deny_if: [{conditions: [], on_deny: 'Requires approval.'}]},
    }));
    audit = path.join(dir, 'audit.log');
    const config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({
      servers: {
        everything: {upstream: everything.url},
        filesystem: {
          upstream: {command: [process.execPath,
                               package_file('@modelcontextprotocol/server-filesystem', 'dist/index.js'),
                               files]},
        },
        python: {upstream: {command: ['python3', interpreter, '--dir', path.join(dir, 'work')]}},
      },
      identities: [
        {name: 'alice', key_sha256: sha256_hex(key), grant: 'agents'},
        {name: 'bob', key_sha256: sha256_hex(other_key), grant: 'agents'},
      ],
      grants: {
        agents: {
          policy: 'everything.json',
          servers: {filesystem: 'filesystem.json', python: 'python.json'},
        },
      },
      audit: {path: audit, flush_interval_ms: 10},
      limits: {upstream_response_timeout_ms: 20_000},
    }));
    gateway = await start_gateway({config, admin: true});
  });

  after(async () => {
    await stop_all(gateway, everything);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  const at = (p) => new URL(p, gateway.url).href;
  // A raw POST of `message` to /mcp as the holder of `bearer`, with `headers` besides.
  const post_mcp = (bearer, headers, message) => fetch(at('/mcp'), {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      Authorization: `Bearer ${bearer}`,
      ...headers,
    },
    body: JSON.stringify(message),
  });

  test('lists every server\'s tools prefixed, and calls one tool of each', {timeout: 90_000},
       async () => {
         const {client} = await connect_client(at('/mcp'), {key});
         try {
           const names = await tool_names(client);
           for (const expected of ['everything__echo', 'everything__trigger-long-running-operation',
                                   'filesystem__read_text_file', 'filesystem__list_directory',
                                   'python__run_python_code', 'python__list_directory'])
             assert.ok(names.includes(expected), `${expected} not in ${names.join(' ')}`);
           assert.ok(!names.includes('everything__get-env'), 'hidden by the everything policy');
           assert.ok(!names.includes('filesystem__write_file'), 'hidden by the filesystem policy');
           assert.ok(names.every((n) => /^(everything|filesystem|python)__/.test(n)), names.join(' '));

           assert.equal(text_of(await call(client, 'everything__echo', {message: 'federated'})),
                        'Echo: federated');
           const read = await call(client, 'filesystem__read_text_file',
                                   {path: path.join(dir, 'files', 'hello.txt')});
           assert.match(text_of(read), /hello from the file server/);
           const run = await call(client, 'python__run_python_code', {code: 'print(6 * 7)'});
           assert.match(text_of(run), /42/);

           // Each denied by its own server's policy, under the server's own name.
           for (const [tool, args, message] of [
                  ['everything__get-env', {}, /No environment/],
                  ['filesystem__write_file', {path: path.join(dir, 'files', 'x'), content: 'x'}, /Read-only/],
                  ['python__clear_session', {}, /Requires approval/]]) {
             const denied = await call(client, tool, args);
             assert.equal(denied.isError, true, tool);
             assert.match(text_of(denied), message);
           }
           assert.ok(!existsSync(path.join(dir, 'files', 'x')));

           const lines = await poll(async () => {
             const all = await audit_lines(audit);
             return all.filter((l) => l.method === 'tools/call').length >= 6 ? all : null;
           }, {what: 'six tools/call lines'});
           const calls = lines.filter((l) => l.method === 'tools/call');
           const echo = calls.find((l) => l.tool === 'echo');
           assert.equal(echo.server, 'everything');
           assert.equal(echo.decision, 'allowed');
           assert.equal(echo.identity, 'alice');
           const refused = calls.find((l) => l.tool === 'write_file');
           assert.equal(refused.server, 'filesystem');
           assert.equal(refused.decision, 'denied');
           const metrics = await read_metrics(gateway.admin_url);
           assert.ok(metrics.get('mcpgate_server_requests_total{server="everything",decision="allowed"}') >= 1);
           assert.ok(metrics.get('mcpgate_server_requests_total{server="filesystem",decision="denied"}') >= 1);
           assert.ok(metrics.get('mcpgate_server_requests_total{server="federation",decision="allowed"}') >= 1,
                     'the endpoint\'s own answers (initialize, the merged list)');
           assert.ok(!calls.some((l) => l.tool?.includes('__')),
                     'audit lines name the server\'s own tool, once per call');
           // What the endpoint answered itself is audited as the endpoint's.
           const initialize = lines.find((l) => l.method === 'initialize' && l.server === 'federation');
           assert.ok(initialize, 'the initialize of /mcp');
           assert.equal(initialize.identity, 'alice');
           assert.equal(initialize.decision, 'allowed');
         } finally {
           await client.close();
         }
       });

  test('prompts are listed prefixed and fetched from their server', {timeout: 30_000}, async () => {
    const {client} = await connect_client(at('/mcp'), {key});
    try {
      const {prompts} = await client.listPrompts(undefined, request_options);
      const names = prompts.map((p) => p.name);
      assert.ok(names.includes('everything__simple-prompt'), names.join(' '));
      assert.ok(names.every((n) => /^(everything|filesystem|python)__/.test(n)), names.join(' '));
      const got = await client.getPrompt({name: 'everything__simple-prompt'}, request_options);
      assert.ok(got.messages.length > 0);
      await assert.rejects(client.getPrompt({name: 'nowhere__x'}, request_options),
                           /names no server of the federated endpoint/);
    } finally {
      await client.close();
    }
  });

  test('resources are listed under mcp-federated://<server>/ and read from their server',
       {timeout: 30_000}, async () => {
         const {client} = await connect_client(at('/mcp'), {key});
         try {
           const {resources} = await client.listResources(undefined, request_options);
           assert.ok(resources.length > 0);
           assert.ok(resources.every((r) => r.uri.startsWith('mcp-federated://everything/')),
                     resources.map((r) => r.uri).join(' '));
           const first = resources[0];
           const read = await client.readResource({uri: first.uri}, request_options);
           assert.equal(read.contents[0].uri, first.uri.slice('mcp-federated://everything/'.length),
                        'the contents carry the server\'s own URI');
           const {resourceTemplates} = await client.listResourceTemplates(undefined, request_options);
           assert.ok(resourceTemplates.every((t) => t.uriTemplate.startsWith('mcp-federated://')));
           await assert.rejects(client.readResource({uri: 'demo://nowhere'}, request_options),
                                /names no server of the federated endpoint/);
         } finally {
           await client.close();
         }
       });

  test('server/discover names the revisions the endpoint serves', async () => {
    const response =
        await post_mcp(key, {}, {jsonrpc: '2.0', id: 'd', method: 'server/discover', params: {}});
    assert.equal(response.status, 200);
    const {result} = await response.json();
    assert.deepEqual(result.supportedVersions, ['2025-11-25', '2025-06-18', '2025-03-26']);
    assert.equal(result.capabilities.tools.listChanged, true);
  });

  test('progress from one server streams while another answers', {timeout: 60_000}, async () => {
    const {client} = await connect_client(at('/mcp'), {key});
    try {
      const progress = [];
      const long = call(client, 'everything__trigger-long-running-operation', {duration: 2, steps: 4},
                        {onprogress: ({progress: value}) => progress.push(value)});
      // Answered while the long call runs.
      const echoed = await call(client, 'everything__echo', {message: 'meanwhile'});
      assert.equal(text_of(echoed), 'Echo: meanwhile');
      const listed = await call(client, 'python__list_directory', {});
      assert.equal(listed.isError ?? false, false);
      assert.ok(progress.length < 4, 'answered before the long call ended');
      const result = await long;
      assert.match(text_of(result), /Long running operation completed/);
      assert.deepEqual(progress, [1, 2, 3, 4]);
    } finally {
      await client.close();
    }
  });

  test('catalogue --config classifies every server of the config under its name',
       {timeout: 90_000}, async () => {
         const policies = path.join(dir, 'starter');
         const listed = await new Promise((resolve) => {
           execFile(gateway_bin, ['catalogue', '--config', path.join(dir, 'gateway.json'), '--json',
                                  '--policy', policies],
                    {timeout: 60_000}, (error, stdout, stderr) =>
                        resolve({code: error ? (error.code ?? 1) : 0, stdout, stderr}));
         });
         assert.equal(listed.code, 0, listed.stderr);
         const {servers} = JSON.parse(listed.stdout);
         assert.deepEqual(Object.keys(servers), ['everything', 'filesystem', 'python']);
         assert.ok(servers.filesystem.tools.some((t) => t.name === 'write_file'));
         assert.ok(servers.python.tools.some((t) => t.name === 'run_python_code'));
         for (const name of ['everything', 'filesystem', 'python'])
           assert.ok(existsSync(path.join(policies, `${name}.json`)), `${name}.json written`);
       });

  test('each server is itself at /mcp/<name>, unprefixed', {timeout: 60_000}, async () => {
    const {client} = await connect_client(at('/mcp/everything'), {key});
    try {
      const names = await tool_names(client);
      assert.ok(names.includes('echo'));
      assert.ok(!names.some((n) => n.includes('__')));
      assert.equal(text_of(await call(client, 'echo', {message: 'direct'})), 'Echo: direct');
    } finally {
      await client.close();
    }
  });

  test('a session on /mcp is its identity\'s alone', {timeout: 30_000}, async () => {
    const {client, transport} = await connect_client(at('/mcp'), {key});
    try {
      const response = await post_mcp(
          other_key, {'Mcp-Session-Id': transport.sessionId, 'MCP-Protocol-Version': '2025-06-18'},
          {jsonrpc: '2.0', id: 9, method: 'tools/list'});
      assert.equal(response.status, 404);
      // A 2026-07-28 request has no session: it is pointed to the server's own endpoint.
      const stateless = await post_mcp(key, {'MCP-Protocol-Version': '2026-07-28'},
                                       {jsonrpc: '2.0', id: 10, method: 'tools/list'});
      assert.equal(stateless.status, 400);
      assert.match((await stateless.json()).error.message, /\/mcp\/<server>/);
    } finally {
      await client.close();
    }
  });

  test('a server that dies leaves the list, with list_changed, and returns when it runs again',
       {timeout: 120_000}, async () => {
         const {client} = await connect_client(at('/mcp'), {key});
         try {
           let changes = 0;
           client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changes += 1; });
           assert.ok((await tool_names(client)).includes('everything__echo'));
           const port = everything.port;
           await everything.stop({signal: 'SIGKILL'});
           everything = null;

           // The other two keep serving; the dead one's tools are gone and its call is refused
           // with its name.
           const names = await tool_names(client);
           assert.ok(!names.some((n) => n.startsWith('everything__')), names.join(' '));
           assert.ok(names.includes('python__run_python_code'));
           assert.match(text_of(await call(client, 'python__run_python_code', {code: 'print(1)'})), /1/);
           const refused = await client.callTool({name: 'everything__echo', arguments: {message: 'x'}},
                                                 undefined, request_options)
                               .then((r) => ({result: r}), (error) => ({error}));
           const said = refused.error ? String(refused.error.message) : text_of(refused.result);
           assert.match(said, /everything/);
           const unavailable = await poll(async () => (await audit_lines(audit)).find(
                                              (l) => l.tool === 'everything__echo'),
                                          {what: 'the refused call\'s audit line'});
           assert.equal(unavailable.server, 'federation');
           assert.equal(unavailable.decision, 'upstream_error');
           assert.equal(unavailable.error, 'unavailable');
           await poll(async () => changes >= 1 || null, {what: 'notifications/tools/list_changed'});
           const metrics = await read_metrics(gateway.admin_url);
           assert.equal(metrics.get('mcpgate_upstream_up{server="everything"}'), 0);
           assert.equal(metrics.get('mcpgate_upstream_up{server="python"}'), 1);

           everything = await start_upstream({port});
           await poll(async () => (await tool_names(client)).includes('everything__echo') || null,
                      {what: 'everything listed again', timeout_ms: 60_000});
           assert.equal(text_of(await call(client, 'everything__echo', {message: 'back'})), 'Echo: back');
           await poll(async () => changes >= 2 || null, {what: 'list_changed on the way back'});
           assert.equal((await read_metrics(gateway.admin_url)).get('mcpgate_upstream_up{server="everything"}'), 1);
         } finally {
           await client.close();
         }
       });
});
