// The policy engine end to end: SDK clients holding API keys of two grants call the MCP Python
// Interpreter's tools through the gateway, and a counting upstream (lib/counting_server.mjs)
// witnesses which calls got through. Covers denial by rule, limits counted per grant, tools/list
// filtering, authentication, denials as JSON-RPC errors, SIGHUP reloads and `mcpgate check`.
//
// The tests of the main suite run in order and share the gateways' counters: each one states
// the counts it starts from.
import {McpError} from '@modelcontextprotocol/sdk/types.js';
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {gateway_bin, poll, skip_without_gateway, start_counting_upstream, start_gateway, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

// The seed policy of grant "ops", verbatim from the issue (the catalogue's shorthand: the
// whole object is the map of tool rules).
const seed_policy = `{
  "clear_session": { "deny_if": [ { "conditions": [], "on_deny": "Blocked by default. Requires approval." } ] },
  "write_file": { "limits": [ { "counter": "write_file_per_hour", "window": "hour", "max": 30, "scope": "grant" } ] },
  "list_directory": { "limits": [ { "counter": "list_directory_per_minute", "window": "minute", "max": 60, "scope": "grant" } ] }
}
`;

// Grant "readers": the full format. Its list_directory counter has the same name as ops' and a
// small max, so a count shared across grants would show at once.
const readers_list_max = 3;
function readers_policy({hide = ['write_file', 'run_python_code']} = {}) {
  return JSON.stringify(
      {
        version: '1',
        default: 'allow',
        hide,
        tools: {
          list_directory: {
            limits: [{
              counter: 'list_directory_per_minute',
              window: 'minute',
              max: readers_list_max,
              scope: 'grant'
            }]
          },
        },
      },
      null, 2);
}

const all_tools = ['clear_session', 'list_directory', 'read_file', 'run_python_code', 'write_file'];
const approval_text = '[POLICY DENIED] Blocked by default. Requires approval.';
const denied_code = -32010;
const rate_limited_code = -32011;

function new_key() { return randomBytes(24).toString('base64url'); }

function sha256_hex(text) { return createHash('sha256').update(text).digest('hex'); }

// Writes a gateway config in `dir` giving each of `keys` (name -> key) an identity in the grant
// that `grant_of` names, and each grant its policy file; returns the config's path.
async function write_config(dir, file_name, {upstream_url, keys, grant_of, policies, extra = {}}) {
  const config = {
    upstream: upstream_url,
    identities: Object.entries(keys).map(
        ([name, key]) => ({name, key_sha256: sha256_hex(key), grant: grant_of[name]})),
    grants: Object.fromEntries(
        Object.entries(policies).map(([grant, policy_file]) => [grant, {policy: policy_file}])),
    ...extra,
  };
  const file = path.join(dir, file_name);
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

// Connects an SDK client to `url` that sends `key` as its bearer key on every request.
async function connect_as(url, key) {
  return (await connect_client(url, {key})).client;
}

function call(client, name, args = {}) {
  return client.callTool({name, arguments: args}, undefined, request_options);
}

async function tool_names(client) {
  const {tools} = await client.listTools({}, request_options);
  return tools.map((tool) => tool.name).sort();
}

// What the upstream has received so far, reduced to the numbers the tests compare.
async function seen(upstream, tool) {
  const calls = await upstream.calls();
  return tool === undefined ? calls : (calls.tools[tool] ?? 0);
}

// Asserts that `promise` (a tools/call) rejects with an McpError of `code` whose data carries
// `fields`, and returns the error.
async function assert_mcp_error(promise, code, fields) {
  let caught;
  await assert.rejects(promise, (error) => {
    caught = error;
    return error instanceof McpError;
  });
  assert.equal(caught.code, code, `code of ${caught.message}`);
  for (const [key, value] of Object.entries(fields)) {
    assert.deepEqual(caught.data?.[key], value, `data.${key} of ${JSON.stringify(caught.data)}`);
  }
  return caught;
}

// Runs `mcpgate check` on `files`; resolves with { code, stdout, stderr }.
function run_check(...files) {
  return new Promise((resolve) => {
    execFile(gateway_bin, ['check', ...files], {timeout: 20_000}, (error, stdout, stderr) => {
      resolve({code: error ? error.code : 0, stdout, stderr});
    });
  });
}

// POSTs a tools/call without the SDK, with `authorization` as the header when given.
async function raw_tools_call(url, authorization) {
  const headers = {
    'content-type': 'application/json',
    'accept': 'application/json, text/event-stream',
  };
  if (authorization !== undefined) headers.authorization = authorization;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {name: 'read_file', arguments: {path: '/etc/passwd'}}
    }),
    signal: AbortSignal.timeout(request_options.timeout),
  });
  return {
    status: response.status,
    www_authenticate: response.headers.get('www-authenticate'),
    body: await response.text(),
  };
}

describe('policy decisions through the gateway', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  // `gateway` answers denials as results (the default); `error_gateway` has deny_as "error"
  // and its own readers policy file, which the SIGHUP tests rewrite.
  let gateway = null;
  let error_gateway = null;
  let error_readers_file = null;
  const keys = {ops: new_key(), ops_second: new_key(), reader: new_key()};
  const grant_of = {ops: 'ops', ops_second: 'ops', reader: 'readers'};
  const clients = [];

  async function client_for(target, identity) {
    const client = await connect_as(target.url, keys[identity]);
    clients.push(client);
    return client;
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-policy-'));
    await writeFile(path.join(dir, 'ops.json'), seed_policy);
    await writeFile(path.join(dir, 'readers.json'), readers_policy());
    error_readers_file = path.join(dir, 'readers-error.json');
    await writeFile(error_readers_file, readers_policy());
    upstream = await start_counting_upstream();
    const config = await write_config(dir, 'gateway.json', {
      upstream_url: upstream.url,
      keys,
      grant_of,
      policies: {ops: 'ops.json', readers: 'readers.json'},
    });
    const error_config = await write_config(dir, 'gateway-error.json', {
      upstream_url: upstream.url,
      keys,
      grant_of,
      policies: {ops: 'ops.json', readers: 'readers-error.json'},
      extra: {deny_as: 'error'},
    });
    gateway = await start_gateway({config});
    error_gateway = await start_gateway({config: error_config});
  });

  after(async () => {
    for (const client of clients) await client.close().catch(() => {});
    await stop_all(gateway, error_gateway, upstream);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('mcpgate check accepts the seed policy and names the path of a mistyped key', async () => {
    const seed = await run_check(path.join(dir, 'ops.json'));
    assert.equal(seed.code, 0, JSON.stringify(seed));
    assert.match(seed.stdout, /valid policy/);

    const typo_file = path.join(dir, 'typo.json');
    await writeFile(typo_file, seed_policy.replace('"limits"', '"limit"'));
    const typo = await run_check(typo_file);
    assert.equal(typo.code, 1, JSON.stringify(typo));
    assert.match(typo.stderr, /\$\.tools\.write_file\.limit\b/);
    assert.match(typo.stderr, /unknown key "limit"/);
    assert.ok(
        typo.stderr.includes(typo_file), `the message does not name the file: ${typo.stderr}`);
  });

  test(
      'answers 401 with WWW-Authenticate to a missing or unknown key, upstream untouched',
      {timeout: 30_000}, async () => {
        const before_calls = await seen(upstream);
        for (const authorization of [undefined, `Bearer ${new_key()}`, `Bearer `]) {
          const reply = await raw_tools_call(gateway.url, authorization);
          assert.equal(reply.status, 401, `${authorization}: ${JSON.stringify(reply)}`);
          assert.match(reply.www_authenticate ?? '', /^Bearer\b/, JSON.stringify(reply));
        }
        assert.deepEqual(await seen(upstream), before_calls);
      });

  test(
      'filters tools/list per grant: readers lack the hidden tools, ops the one it always denies',
      {timeout: 30_000}, async () => {
        const ops = await client_for(gateway, 'ops');
        const reader = await client_for(gateway, 'reader');
        // hide_denied_tools defaults to true: the seed policy denies clear_session whatever the
        // arguments, so the ops grant does not list it (calling it still gets the denial).
        assert.deepEqual(
            await tool_names(ops), all_tools.filter((name) => name !== 'clear_session'));
        assert.deepEqual(
            await tool_names(reader), ['clear_session', 'list_directory', 'read_file']);
      });

  test(
      'denies clear_session with the policy\'s message; the upstream never sees it',
      {timeout: 30_000}, async () => {
        const ops = await client_for(gateway, 'ops');
        const result = await call(ops, 'clear_session');
        assert.equal(result.isError, true);
        assert.deepEqual(result.content, [{type: 'text', text: approval_text}]);
        assert.deepEqual(result.structuredContent, {
          decision: 'denied',
          tool: 'clear_session',
          rule: 'tools.clear_session.deny_if[0]',
        });
        // An allowed call on the same session does reach the upstream.
        assert.equal(text_of(await call(ops, 'read_file', {path: '/tmp/a'})), 'contents of /tmp/a');
        assert.equal(await seen(upstream, 'clear_session'), 0);
        assert.equal(await seen(upstream, 'read_file'), 1);
      });

  test(
      'allows 30 write_file an hour for the ops grant, the 31st is rate limited for both keys',
      {timeout: 60_000}, async () => {
        const ops = await client_for(gateway, 'ops');
        const ops_second = await client_for(gateway, 'ops_second');
        for (let i = 0; i < 30; ++i) {
          const result = await call(ops, 'write_file', {path: `/tmp/f${i}`, content: 'x'});
          assert.notEqual(result.isError, true, `write_file #${i + 1}: ${text_of(result)}`);
          assert.equal(text_of(result), `wrote 1 bytes to /tmp/f${i}`);
        }
        assert.equal(await seen(upstream, 'write_file'), 30);

        for (const client of [ops, ops_second]) {
          const denied = await call(client, 'write_file', {path: '/tmp/f31', content: 'x'});
          assert.equal(denied.isError, true);
          const info = denied.structuredContent;
          assert.equal(info.decision, 'rate_limited');
          assert.equal(info.tool, 'write_file');
          assert.equal(info.counter, 'write_file_per_hour');
          assert.equal(info.window, 'hour');
          assert.equal(info.max, 30);
          assert.ok(
              info.retry_after_ms > 0 && info.retry_after_ms <= 3_600_000, JSON.stringify(info));
          assert.match(text_of(denied), /^\[POLICY DENIED\] /);
        }
        assert.equal(await seen(upstream, 'write_file'), 30);
      });

  test(
      'counts list_directory per grant: two ops keys share 60 a minute, readers count apart',
      {timeout: 60_000}, async () => {
        const ops = await client_for(gateway, 'ops');
        const ops_second = await client_for(gateway, 'ops_second');
        const reader = await client_for(gateway, 'reader');
        // 30 calls by each ops key: 60 on the shared counter.
        for (let i = 0; i < 60; ++i) {
          const result = await call(i % 2 ? ops_second : ops, 'list_directory', {path: `/d${i}`});
          assert.notEqual(result.isError, true, `list_directory #${i + 1}: ${text_of(result)}`);
        }
        assert.equal(await seen(upstream, 'list_directory'), 60);
        for (const client of [ops, ops_second]) {
          const denied = await call(client, 'list_directory', {path: '/d61'});
          assert.equal(denied.isError, true);
          assert.equal(denied.structuredContent.decision, 'rate_limited');
          assert.equal(denied.structuredContent.counter, 'list_directory_per_minute');
          assert.equal(denied.structuredContent.window, 'minute');
          assert.equal(denied.structuredContent.max, 60);
        }
        assert.equal(await seen(upstream, 'list_directory'), 60);

        // The readers grant's counter of the same name starts from zero.
        for (let i = 0; i < readers_list_max; ++i) {
          const result = await call(reader, 'list_directory', {path: `/r${i}`});
          assert.notEqual(result.isError, true, `readers list_directory #${i + 1}`);
        }
        const denied = await call(reader, 'list_directory', {path: '/r-over'});
        assert.equal(denied.structuredContent.decision, 'rate_limited');
        assert.equal(denied.structuredContent.max, readers_list_max);
        assert.equal(await seen(upstream, 'list_directory'), 60 + readers_list_max);
      });

  test(
      'denies readers the hidden tools at call time; the upstream never sees them',
      {timeout: 30_000}, async () => {
        const reader = await client_for(gateway, 'reader');
        const before_calls = await seen(upstream);
        for (const tool of ['write_file', 'run_python_code']) {
          const denied = await call(reader, tool, {path: '/tmp/r', content: 'x', code: '1'});
          assert.equal(denied.isError, true);
          assert.deepEqual(denied.structuredContent, {decision: 'denied', tool, rule: 'hide'});
          assert.match(text_of(denied), /^\[POLICY DENIED\] .*hidden tool/);
        }
        assert.deepEqual((await seen(upstream)).tools, before_calls.tools);
      });

  test(
      'with deny_as "error" a denial rejects with McpError -32010 and a limit with -32011',
      {timeout: 30_000}, async () => {
        const ops = await client_for(error_gateway, 'ops');
        const reader = await client_for(error_gateway, 'reader');
        const before_calls = await seen(upstream);
        const error = await assert_mcp_error(
            call(ops, 'clear_session'), denied_code,
            {decision: 'denied', tool: 'clear_session', rule: 'tools.clear_session.deny_if[0]'});
        assert.match(error.message, new RegExp(approval_text.replace(/[[\].]/g, '\\$&')));
        assert.equal(await seen(upstream, 'clear_session'), 0);

        // This gateway has counters of its own: the other gateway's calls do not count here.
        for (let i = 0; i < readers_list_max; ++i) {
          await call(reader, 'list_directory', {path: `/e${i}`});
        }
        await assert_mcp_error(
            call(reader, 'list_directory', {path: '/e-over'}), rate_limited_code, {
              decision: 'rate_limited',
              counter: 'list_directory_per_minute',
              max: readers_list_max
            });
        assert.equal(
            await seen(upstream, 'list_directory'),
            before_calls.tools.list_directory + readers_list_max);
      });

  test(
      'SIGHUP with a broken policy keeps the old one; with a fixed one applies it',
      {timeout: 60_000}, async () => {
        const reader = await client_for(error_gateway, 'reader');
        const write_args = {path: '/tmp/after-reload', content: 'x'};
        const writes_before = await seen(upstream, 'write_file');

        // A typo in the policy file: the reload is refused and the old rules stay.
        await writeFile(error_readers_file, readers_policy().replace('"hide"', '"hidden"'));
        const rejected = error_gateway.process.wait_for_line(/reload rejected/);
        process.kill(error_gateway.process.pid, 'SIGHUP');
        const {input: line} = await rejected;
        assert.ok(
            line.includes(error_readers_file), `the rejection does not name the file: ${line}`);
        assert.match(line, /unknown key "hidden"/);
        await assert_mcp_error(call(reader, 'write_file', write_args), denied_code, {rule: 'hide'});
        assert.deepEqual(
            await tool_names(reader), ['clear_session', 'list_directory', 'read_file']);

        // Fixed, and write_file no longer hidden: the new policy applies.
        await writeFile(error_readers_file, readers_policy({hide: ['run_python_code']}));
        const reloaded = error_gateway.process.wait_for_line(/SIGHUP: reloaded/);
        process.kill(error_gateway.process.pid, 'SIGHUP');
        await reloaded;
        // Shards pick the new rules up from their inboxes after the line is printed; a denied
        // call never reaches the upstream, so retrying until one is allowed writes exactly once.
        const result = await poll(async () => {
          try {
            return await call(reader, 'write_file', write_args);
          } catch (error) {
            if (error instanceof McpError && error.code === denied_code) return null;
            throw error;
          }
        }, {what: 'write_file allowed for readers after the reload', timeout_ms: 10_000});
        assert.equal(text_of(result), 'wrote 1 bytes to /tmp/after-reload');
        assert.equal(await seen(upstream, 'write_file'), writes_before + 1);
        assert.deepEqual(
            await tool_names(reader),
            ['clear_session', 'list_directory', 'read_file', 'write_file']);
        await assert_mcp_error(
            call(reader, 'run_python_code', {code: '1'}), denied_code, {rule: 'hide'});
      });
});
