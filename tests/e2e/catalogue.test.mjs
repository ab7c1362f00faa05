// `mcpgate catalogue` against real servers: @modelcontextprotocol/server-filesystem over stdio,
// @modelcontextprotocol/server-everything over Streamable HTTP, the MCP Python Interpreter
// stand-in (tests/fixtures/python_interpreter_server.py) over stdio, and the counting server
// over HTTP, whose written policy the gateway then enforces. Broken servers (one that cannot
// start, one that speaks garbage, one that never answers) must get one line and exit 1, fast.
import {Client} from '@modelcontextprotocol/sdk/client/index.js';
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {mkdtemp, readFile, rm} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {gateway_bin, package_file, skip_without_gateway, source_root, start_counting_upstream, start_process, start_upstream, stop_all} from './lib/harness.mjs';

const node = process.execPath;
const fixture = path.join(source_root, 'tests', 'fixtures', 'python_interpreter_server.py');
const approval_text = '[POLICY DENIED] Blocked by default. Requires approval.';

// Runs `mcpgate <args>`; resolves with { code, stdout, stderr, elapsed_ms }. The timeout only
// bounds a hung command: the tests assert on elapsed_ms themselves.
function run_mcpgate(args, {timeout = 30_000} = {}) {
  const started = Date.now();
  return new Promise((resolve) => {
    const env = {...process.env};
    delete env.NODE_TEST_CONTEXT;  // a Node server started by the catalogue must not inherit it
    execFile(gateway_bin, args, {timeout, env}, (error, stdout, stderr) => {
      resolve({
        code: error ? (typeof error.code === 'number' ? error.code : null) : 0,
        stdout,
        stderr,
        elapsed_ms: Date.now() - started,
      });
    });
  });
}

async function catalogue_json(...args) {
  const r = await run_mcpgate(['catalogue', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function classes_of(report) {
  return Object.fromEntries(report.tools.map((t) => [t.name, t.class]));
}

async function assert_policy_checks(file) {
  const r = await run_mcpgate(['check', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /: valid policy/);
  return r.stdout;
}

function assert_one_line_error(r, pattern) {
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^mcpgate catalogue: [^\n]+\n$/);
  assert.match(r.stderr, pattern);
  assert.ok(r.elapsed_ms < 5_000, `took ${r.elapsed_ms} ms`);
}

describe('mcpgate catalogue', {skip: skip_without_gateway}, () => {
  let dir;
  before(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-catalogue-')); });
  after(async () => { await rm(dir, {recursive: true, force: true}); });

  test('server-filesystem over stdio: annotations decide, 3 destructive tools', async () => {
    const root = await mkdtemp(path.join(dir, 'fs-'));
    const entry = package_file('@modelcontextprotocol/server-filesystem', 'dist/index.js');
    const policy = path.join(dir, 'filesystem.json');
    const r = await run_mcpgate(['catalogue', '--policy', policy, '--', node, entry, root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /14 tools\. 4 can modify or destroy data\. 3 destructive tools with no built-in limits\. Policy required\./);
    assert.match(r.stdout, /Risk: Critical/);
    assert.match(r.stdout, /Destructive \(3\): blocked by default, requires approval/);
    assert.match(r.stdout, /write_file: annotations say Destructive, but the name verb "write" suggests Write/);

    const report = await catalogue_json('--', node, entry, root);
    assert.deepEqual(
        report.counts,
        {total: 14, modifying: 4, destructive: 3, financial: 0, execute: 0, write: 1, read: 10});
    const classes = classes_of(report);
    for (const name of ['write_file', 'edit_file', 'move_file']) assert.equal(classes[name], 'Destructive', name);
    assert.equal(classes.create_directory, 'Write');
    for (const name of ['read_text_file', 'list_directory', 'search_files', 'get_file_info']) {
      assert.equal(classes[name], 'Read', name);
    }
    assert.ok(report.tools.every((t) => t.from_annotations));

    const described = await assert_policy_checks(policy);
    assert.match(described, /tool "move_file":\n  deny_if\[0\]: always -> "Blocked by default\. Requires approval\."/);
    assert.match(described, /limit "create_directory_per_hour": at most 30 calls per rolling hour, counted per grant/);
    assert.match(described, /limit "read_text_file_per_minute": at most 60 calls per rolling minute/);
  });

  test('server-everything over Streamable HTTP: only additive writes, Medium risk', async (t) => {
    const upstream = await start_upstream();
    t.after(() => stop_all(upstream));
    const policy = path.join(dir, 'everything.json');
    const report = await catalogue_json(
        '--upstream', upstream.url, '--policy', policy, '--write-per-hour', '5', '--read-per-minute', '7');
    assert.equal(report.server.name, 'mcp-servers/everything');
    assert.equal(report.counts.destructive, 0);
    assert.equal(report.counts.financial, 0);
    assert.equal(report.counts.execute, 0);
    assert.ok(report.counts.write >= 3, JSON.stringify(report.counts));
    assert.equal(report.counts.total, report.tools.length);
    assert.equal(report.risk.level, 'Medium');
    const classes = classes_of(report);
    for (const name of ['echo', 'get-sum', 'get-env', 'get-tiny-image']) assert.equal(classes[name], 'Read', name);
    for (const name of ['toggle-simulated-logging', 'toggle-subscriber-updates', 'gzip-file-as-resource']) {
      assert.equal(classes[name], 'Write', name);
    }
    const written = JSON.parse(await readFile(policy, 'utf8'));
    assert.deepEqual(written.tools['get-sum'],
                     {limits: [{counter: 'get-sum_per_minute', window: 'minute', max: 7, scope: 'grant'}]});
    assert.deepEqual(
        written.tools['toggle-simulated-logging'],
        {limits: [{counter: 'toggle-simulated-logging_per_hour', window: 'hour', max: 5, scope: 'grant'}]});
    await assert_policy_checks(policy);
  });

  test('the Python interpreter fixture over stdio: 5 read, 3 execute, 1 write, 1 destructive', async () => {
    const work = await mkdtemp(path.join(dir, 'py-'));
    const policy = path.join(dir, 'python.json');
    const r = await run_mcpgate(['catalogue', '--policy', policy, '--', 'python3', fixture, '--dir', work]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /10 tools\. 5 can modify or destroy data\. 1 destructive tool with no built-in limits\. Policy required\./);
    const report = await catalogue_json('--', 'python3', fixture, '--dir', work);
    assert.deepEqual(classes_of(report), {
      list_python_environments: 'Read',
      list_installed_packages: 'Read',
      run_python_code: 'Execute',
      run_python_file: 'Execute',
      install_package: 'Execute',
      read_file: 'Read',
      write_file: 'Write',
      list_directory: 'Read',
      clear_session: 'Destructive',
      list_sessions: 'Read',
    });
    assert.ok(report.tools.every((t) => !t.from_annotations));
    const described = await assert_policy_checks(policy);
    assert.match(described, /default: deny/);
    assert.match(described, /tool "clear_session":\n  deny_if\[0\]: always -> "Blocked by default\. Requires approval\."/);
  });

  test('the written policy loads in the gateway as it is and denies the destructive tool', async (t) => {
    const upstream = await start_counting_upstream();
    const policy = path.join(dir, 'counting.json');
    const r = await run_mcpgate(['catalogue', '--upstream', upstream.url, '--policy', policy]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Destructive \(1\): blocked by default, requires approval\n  clear_session/);

    const gateway = start_process(
        'mcpgate', gateway_bin,
        ['--listen', '127.0.0.1:0', '--upstream', upstream.url, '--policy', policy, '--shards', '1']);
    t.after(() => stop_all(gateway, upstream));
    const [, port] = await gateway.wait_for_line(/^mcpgate: listening on 127\.0\.0\.1:(\d+)$/);
    const client = new Client({name: 'mcpgate-e2e-catalogue', version: '1.0.0'}, {capabilities: {}});
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
    try {
      await check_enforcement(client, upstream);
    } finally {
      // Before the gateway stops, so that it has no open stream to drain.
      await client.close();
    }
  });

  // Through the gateway: the denied tool never reaches the upstream, an allowed one does.
  async function check_enforcement(client, upstream) {
    // Every catalogued tool is listed in the policy, so `default: deny` hides none of the others.
    const {tools} = await client.listTools();
    const listed = tools.map((x) => x.name);
    for (const name of ['list_directory', 'read_file', 'run_python_code', 'write_file']) {
      assert.ok(listed.includes(name), `${name} in ${listed}`);
    }
    const denied = await client.callTool({name: 'clear_session', arguments: {}});
    assert.equal(denied.isError, true);
    assert.equal(denied.content[0].text, approval_text);
    const allowed = await client.callTool({name: 'read_file', arguments: {path: 'a.txt'}});
    assert.notEqual(allowed.isError, true);
    const calls = await upstream.calls();
    assert.equal(calls.tools.clear_session ?? 0, 0);
    assert.equal(calls.tools.read_file, 1);
  }

  test('a server that cannot start gets one line and exit 1', async () => {
    const r = await run_mcpgate(['catalogue', '--', path.join(dir, 'no-such-server')]);
    assert_one_line_error(r, /cannot start '.*no-such-server': No such file or directory/);
  });

  test('a server that exits at once gets one line naming how it ended', async () => {
    const r = await run_mcpgate(['catalogue', '--', node, path.join(dir, 'missing.js')]);
    assert_one_line_error(r, /the server exited with status 1 before answering initialize \(its stderr: '.*Cannot find module/);
  });

  test('a server that speaks garbage gets one line and exit 1', async () => {
    const r = await run_mcpgate(
        ['catalogue', '--', node, '-e', 'console.log("Server ready!"); setTimeout(() => {}, 60000)']);
    assert_one_line_error(r, /not JSON-RPC on stdout: 'Server ready!'/);
  });

  test('an HTTP endpoint that is not MCP gets one line and exit 1', async (t) => {
    const upstream = await start_upstream();
    t.after(() => stop_all(upstream));
    const r = await run_mcpgate(['catalogue', '--upstream', upstream.url.replace(/\/mcp$/, '/elsewhere')]);
    assert_one_line_error(r, /HTTP 404 .*answering initialize/);
  });

  test('a server that never answers times out with one line', async () => {
    const r = await run_mcpgate(
        ['catalogue', '--timeout-ms', '500', '--', node, '-e', 'setTimeout(() => {}, 60000)']);
    assert_one_line_error(r, /no answer to initialize within 500 ms/);
  });
});
