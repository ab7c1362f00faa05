// stdio upstreams end to end (issue #5): the gateway starts a real stdio MCP server per session
// (--upstream-command, or a config file's "upstream" object) and SDK clients reach it over
// Streamable HTTP. Covers @modelcontextprotocol/server-filesystem and server-everything in stdio
// mode, the MCP Python Interpreter stand-in (tests/fixtures/python_interpreter_server.py): session
// isolation, a killed child, the gateway's SIGTERM; then children that misbehave (one ignoring
// SIGTERM, one leaving a stray on its stdout, one crash-looping), and examples/python-interpreter/
// run as an operator would run it, by its file and as the embedded default.
//
// Children are found by the gateway's log of their stderr ("mcpgate: stdio: session XXXXXXXX pid
// N: <line>"): every server used here writes a line on stderr when it starts.
import {CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema, McpError} from '@modelcontextprotocol/sdk/types.js';
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {gateway_bin, package_file, poll, read_metrics, sed_stdio_server, skip_without_gateway, source_root, start_gateway, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

const node = process.execPath;
const fixture = path.join(source_root, 'tests', 'fixtures', 'python_interpreter_server.py');
const example_dir = path.join(source_root, 'examples', 'python-interpreter');
const example_config = path.join(example_dir, 'mcpgate.json');
const approval_text = '[POLICY DENIED] Blocked by default. Requires approval.';
const interpreter_tools = [
  'clear_session',
  'install_package',
  'list_directory',
  'list_installed_packages',
  'list_python_environments',
  'list_sessions',
  'read_file',
  'run_python_code',
  'run_python_file',
  'write_file',
];
const stdio_exited_code = -32036;

// One word for --upstream-command, whatever it holds.
function quote(word) { return `'${word.replaceAll('\'', '\'\\\'\'')}'`; }

function command_line(...words) { return words.map(quote).join(' '); }

function call(client, name, args = {}) {
  return client.callTool({name, arguments: args}, undefined, request_options);
}

// Keeps every stderr line of `gateway` from now on (the harness keeps only a tail), so that a
// child's pid can be found by its session id however much was logged since.
function collect_log(gateway) {
  const lines = [];
  gateway.process.watch_lines((stream_name, line) => {
    if (stream_name === 'stderr') lines.push(line);
  });
  return lines;
}

const child_line = /^mcpgate: stdio: session ([0-9a-f]{8}) pid (\d+): /;

// The pid of the child serving `session_id`, from the first line it wrote on its stderr.
function child_pid(log, session_id) {
  return poll(() => {
    for (const line of log) {
      const match = child_line.exec(line);
      if (match && match[1] === session_id.slice(0, 8)) return Number(match[2]);
    }
    return null;
  }, {what: `a stderr line from the child of session ${session_id}`, timeout_ms: 15_000});
}

// True while `pid` exists, zombie included: a child the gateway has not reaped still counts.
function process_exists(pid) { return existsSync(`/proc/${pid}`); }

async function metric(gateway, name) {
  const samples = await read_metrics(gateway.admin_url);
  assert.ok(samples.has(name), `no ${name} on /metrics`);
  return samples.get(name);
}

const accept = 'application/json, text/event-stream';

// POSTs an initialize without the SDK, so that error statuses come back as they are; resolves
// with { status, session_id, body } (body parsed when it is JSON).
async function raw_initialize(url, {key} = {}) {
  const headers = {'content-type': 'application/json', accept};
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: {name: 'mcpgate-e2e-stdio-raw', version: '1.0.0'},
      },
    }),
    signal: AbortSignal.timeout(request_options.timeout),
  });
  const text = await response.text();
  let body = text;
  const type = response.headers.get('content-type') ?? '';
  if (type.startsWith('application/json')) {
    body = JSON.parse(text);
  } else if (type.startsWith('text/event-stream')) {
    const data = text.split('\n').filter((line) => line.startsWith('data: '));
    body = data.length ? JSON.parse(data.at(-1).slice(6)) : text;
  }
  return {status: response.status, session_id: response.headers.get('mcp-session-id'), body};
}

describe('stdio upstream: server-filesystem', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let log = null;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-fs-'));
    const entry = package_file('@modelcontextprotocol/server-filesystem', 'dist/index.js');
    gateway = await start_gateway({upstream_command: command_line(node, entry, dir), admin: true});
    log = collect_log(gateway);
  });

  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test(
      'initializes, lists tools, reads a file, and DELETE ends the session\'s child',
      {timeout: 60_000}, async () => {
        const file = path.join(dir, 'greeting.txt');
        const content = `hello from ${process.pid} at ${Date.now()}\n`;
        await writeFile(file, content);
        const {client, transport} = await connect_client(gateway.url);
        try {
          assert.equal(client.getServerVersion()?.name, 'secure-filesystem-server');
          const session_id = transport.sessionId;
          // The bridge's id, sealed for the identity that created the session.
          assert.match(session_id ?? '', /^[0-9a-f]{32}\.[A-Za-z0-9_-]+$/);
          const {tools} = await client.listTools({}, request_options);
          const names = tools.map((tool) => tool.name);
          for (const expected of ['read_text_file', 'list_directory', 'write_file']) {
            assert.ok(names.includes(expected), `tools/list lacks ${expected}: ${names}`);
          }
          const read = await call(client, 'read_text_file', {path: file});
          assert.notEqual(read.isError, true, text_of(read));
          assert.equal(text_of(read), content);

          const pid = await child_pid(log, session_id);
          assert.ok(process_exists(pid), `child ${pid} is not running`);
          assert.equal(await metric(gateway, 'mcpgate_stdio_processes'), 1);
          assert.equal(await metric(gateway, 'mcpgate_stdio_sessions'), 1);

          await transport.terminateSession();
          await poll(() => !process_exists(pid), {what: `child ${pid} to be gone after DELETE`});
          await poll(
              async () => await metric(gateway, 'mcpgate_stdio_processes') === 0,
              {what: 'mcpgate_stdio_processes to drop to 0'});
          assert.equal(await metric(gateway, 'mcpgate_stdio_sessions'), 0);
          assert.equal(await metric(gateway, 'mcpgate_stdio_spawned_total'), 1);
          assert.equal(await metric(gateway, 'mcpgate_stdio_exits_total'), 1);
          // Ended by the gateway, not on its own: no crash.
          assert.equal(await metric(gateway, 'mcpgate_stdio_crashes_total'), 0);
        } finally {
          await client.close();
        }
      });
});

describe('stdio upstream: server-everything', {skip: skip_without_gateway}, () => {
  let gateway = null;

  before(async () => {
    const entry = package_file('@modelcontextprotocol/server-everything', 'dist/index.js');
    gateway = await start_gateway({upstream_command: command_line(node, entry, 'stdio')});
  });

  after(async () => {
    await stop_all(gateway);
  });

  test(
      'streams every progress notification of a long call before its result', {timeout: 60_000},
      async () => {
        const steps = 4;
        const {client} = await connect_client(gateway.url);
        try {
          const progress = [];
          const started = performance.now();
          const result = await client.callTool(
              {name: 'trigger-long-running-operation', arguments: {duration: 2, steps}}, undefined,
              {
                ...request_options,
                onprogress: ({progress: value, total}) => {
                  progress.push({value, total, at_ms: performance.now() - started});
                },
              });
          const result_at_ms = performance.now() - started;
          const timeline = JSON.stringify({progress, result_at_ms});
          assert.match(text_of(result), /Long running operation completed\./);
          assert.deepEqual(progress.map(({value}) => value), [1, 2, 3, 4], timeline);
          assert.deepEqual(progress.map(({total}) => total), [steps, steps, steps, steps]);
          // Steps are 500 ms apart: a bridge that held the stream until the result would deliver
          // the first notification with it.
          assert.ok(result_at_ms - progress[0].at_ms >= 750, `not streamed: ${timeline}`);
        } finally {
          await client.close();
        }
      });

  test(
      'carries a sampling request from the child to the client and the answer back',
      {timeout: 60_000}, async () => {
        const marker = `sample-${process.pid}-${Date.now()}`;
        const requests = [];
        const {client} = await connect_client(gateway.url, {
          capabilities: {sampling: {}},
          install: (c) => c.setRequestHandler(
              CreateMessageRequestSchema,
              (request) => {
                requests.push(request.params);
                return {
                  model: 'e2e-stdio-model',
                  role: 'assistant',
                  content: {type: 'text', text: `answer to ${marker}`},
                  stopReason: 'endTurn',
                };
              }),
        });
        try {
          const result =
              await call(client, 'trigger-sampling-request', {prompt: marker, maxTokens: 16});
          assert.equal(requests.length, 1);
          assert.match(requests[0].messages[0].content.text, new RegExp(marker));
          const text = text_of(result);
          assert.match(text, new RegExp(`answer to ${marker}`));
          assert.match(text, /e2e-stdio-model/);
        } finally {
          await client.close();
        }
      });

  test(
      'carries an elicitation request from the child to the client and the answer back',
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
          const result = await call(client, 'trigger-elicitation-request');
          assert.equal(elicitations, 1);
          assert.match(text_of(result), new RegExp(`- Name: ${marker}`));
        } finally {
          await client.close();
        }
      });

  test(
      'carries a roots request made outside any call on the GET stream, and the answer back',
      {timeout: 60_000}, async () => {
        const roots = [{uri: 'file:///e2e/stdio-alpha', name: 'alpha'}];
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
          // The child asks for roots soon after the handshake, while no POST is open: the bridge
          // streams it on the GET stream, or holds it until the client opens one. A change
          // notification asks again should the first request have been sent before.
          let last_nudge_ms = performance.now();
          await poll(async () => {
            if (roots_requests > 0) return true;
            if (performance.now() - last_nudge_ms > 1_000) {
              last_nudge_ms = performance.now();
              await client.sendRootsListChanged();
            }
            return false;
          }, {what: 'a roots/list request from the child', timeout_ms: 15_000});
          // The child acknowledges the answer with a log message, again outside any call.
          await poll(
              () => log_lines.some((line) => line.includes('Roots updated: 1 root(s)')),
              {what: 'the child\'s log message acknowledging the roots', timeout_ms: 15_000});
          const result = await call(client, 'get-roots-list');
          assert.match(text_of(result), /file:\/\/\/e2e\/stdio-alpha/);
        } finally {
          await client.close();
        }
      });
});

describe('stdio upstream: the Python interpreter stand-in', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let log = null;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-py-'));
    gateway = await start_gateway(
        {upstream_command: command_line('python3', fixture, '--dir', dir), admin: true});
    log = collect_log(gateway);
  });

  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test(
      'keeps two concurrent sessions apart: each reads back its own variable', {timeout: 60_000},
      async () => {
        const [one, two] =
            await Promise.all([connect_client(gateway.url), connect_client(gateway.url)]);
        try {
          assert.notEqual(one.transport.sessionId, two.transport.sessionId);
          await Promise.all([
            call(one.client, 'run_python_code', {code: 'x = 1'}),
            call(two.client, 'run_python_code', {code: 'x = 2'}),
          ]);
          const [read_one, read_two] = await Promise.all([
            call(one.client, 'run_python_code', {code: 'x'}),
            call(two.client, 'run_python_code', {code: 'x'}),
          ]);
          assert.match(text_of(read_one), /--- Output ---\n1\n$/);
          assert.match(text_of(read_two), /--- Output ---\n2\n$/);
          const pids = await Promise.all(
              [one, two].map(({transport}) => child_pid(log, transport.sessionId)));
          assert.notEqual(pids[0], pids[1], 'both sessions share one child');
        } finally {
          await Promise.all([one.client.close(), two.client.close()]);
        }
      });

  test(
      'reports a child killed mid-call as a JSON-RPC error naming the signal; a new session works',
      {timeout: 60_000}, async () => {
        const {client, transport} = await connect_client(gateway.url);
        const session_id = transport.sessionId;
        let replacement = null;
        try {
          const pid = await child_pid(log, session_id);
          const exits_before = await metric(gateway, 'mcpgate_stdio_exits_total');
          // The call announces that it runs by creating a file, then sleeps until killed.
          const marker = path.join(dir, `running-${session_id}`);
          const pending = call(client, 'run_python_code', {
            code: `open(${JSON.stringify(marker)}, 'w').close()\nimport time\ntime.sleep(120)`,
          });
          pending.catch(() => {});
          await poll(() => existsSync(marker), {what: 'the sleeping call to start'});
          process.kill(pid, 'SIGKILL');

          let caught;
          await assert.rejects(pending, (error) => {
            caught = error;
            return error instanceof McpError;
          });
          assert.equal(caught.code, stdio_exited_code, caught.message);
          assert.match(caught.message, /stdio upstream was killed by signal 9\b/);
          // Killed by someone else: the gateway must not claim it.
          assert.doesNotMatch(caught.message, /stopped by the gateway/);
          await poll(() => !process_exists(pid), {what: `killed child ${pid} to be reaped`});

          // The session ended with its child: the same client is refused.
          await assert.rejects(call(client, 'run_python_code', {code: '1 + 1'}));

          // A child killed less than 2 s after it started counts as a crash, and the next start
          // may then wait out a 250 ms backoff: retry initialize until it is allowed.
          replacement = await poll(async () => {
            try {
              return await connect_client(gateway.url);
            } catch {
              return null;
            }
          }, {what: 'a new session after the kill', timeout_ms: 15_000});
          assert.notEqual(replacement.transport.sessionId, session_id);
          const result = await call(replacement.client, 'run_python_code', {code: '6 * 7'});
          assert.match(text_of(result), /--- Output ---\n42\n$/);
          const new_pid = await child_pid(log, replacement.transport.sessionId);
          assert.notEqual(new_pid, pid);
          assert.equal(await metric(gateway, 'mcpgate_stdio_exits_total'), exits_before + 1);
        } finally {
          await client.close();
          await replacement?.client.close();
        }
      });

  // Last: it stops this suite's gateway.
  test(
      'on SIGTERM ends every session\'s child and exits with status 0', {timeout: 60_000},
      async () => {
        const sessions =
            await Promise.all([connect_client(gateway.url), connect_client(gateway.url)]);
        const pids =
            await Promise.all(sessions.map(({transport}) => child_pid(log, transport.sessionId)));
        for (const pid of pids) assert.ok(process_exists(pid), `child ${pid} is not running`);
        const exit = await gateway.stop({signal: 'SIGTERM', timeout_ms: 15_000});
        assert.deepEqual(exit, {code: 0, signal: null, killed: false}, gateway.process.describe());
        // The children were the gateway's: once it has exited nothing may be left of them.
        for (const pid of pids)
          assert.ok(!process_exists(pid), `child ${pid} outlived the gateway`);
        await Promise.all(sessions.map(({client}) => client.close()));
      });
});

describe('stdio upstream: a child that ignores SIGTERM', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let log = null;
  const kill_grace_ms = 1_500;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-term-'));
    const config = path.join(dir, 'gateway.json');
    // An ignored signal stays ignored across exec: sed inherits the shell's trap.
    const command = sed_stdio_server({prelude: 'trap "" TERM; echo started >&2'});
    await writeFile(config, JSON.stringify({upstream: {command, kill_grace_ms}}));
    gateway = await start_gateway({config, admin: true});
    log = collect_log(gateway);
  });

  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('gets SIGKILL kill_grace_ms after DELETE', {timeout: 60_000}, async () => {
    const opened = await raw_initialize(gateway.url);
    assert.equal(opened.status, 200, JSON.stringify(opened));
    assert.equal(opened.body.result?.serverInfo?.name, 'sed-echo');
    const pid = await child_pid(log, opened.session_id);
    const response = await fetch(gateway.url, {
      method: 'DELETE',
      headers: {'mcp-session-id': opened.session_id, 'mcp-protocol-version': '2025-06-18'},
      signal: AbortSignal.timeout(request_options.timeout),
    });
    assert.equal(response.status, 200);
    const deleted_at = performance.now();
    // SIGTERM went at DELETE and changed nothing; SIGKILL follows after the grace.
    assert.ok(process_exists(pid), `child ${pid} ended on SIGTERM, which it ignores`);
    await poll(() => !process_exists(pid), {what: `child ${pid} to be killed`, timeout_ms: 15_000});
    const gone_after_ms = performance.now() - deleted_at;
    assert.ok(gone_after_ms >= kill_grace_ms - 100, `gone after ${gone_after_ms} ms`);
    await poll(
        async () => await metric(gateway, 'mcpgate_stdio_processes') === 0,
        {what: 'mcpgate_stdio_processes to drop to 0'});
    assert.equal(await metric(gateway, 'mcpgate_stdio_crashes_total'), 0);
  });
});

describe(
    'stdio upstream: a child that leaves a stray holding its stdout', {skip: skip_without_gateway},
    () => {
      let dir = null;
      let gateway = null;
      let log = null;
      const strays = [];

      before(async () => {
        dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-stray-'));
        const config = path.join(dir, 'gateway.json');
        // setsid: the stray leaves the child's process group, so the group kill at exit misses it,
        // and it keeps the child's stdout open for as long as it lives.
        const command = sed_stdio_server(
            {prelude: 'setsid sleep 60 2>/dev/null & echo "stray $!" >&2; echo started >&2'});
        await writeFile(config, JSON.stringify({upstream: {command, max_processes: 1}}));
        gateway = await start_gateway({config, admin: true});
        log = collect_log(gateway);
        gateway.process.watch_lines((stream_name, line) => {
          const match = / pid \d+: stray (\d+)$/.exec(line);
          if (stream_name === 'stderr' && match) strays.push(Number(match[1]));
        });
      });

      after(async () => {
        await stop_all(gateway);
        for (const pid of strays) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        if (dir) await rm(dir, {recursive: true, force: true});
      });

      test(
          'frees the child\'s slot after DELETE: the next initialize is not over max_processes',
          {timeout: 60_000}, async () => {
            for (let round = 1; round <= 3; ++round) {
              // Each round's child must have been released, or max_processes 1 refuses the next.
              const opened = await poll(async () => {
                const reply = await raw_initialize(gateway.url);
                return reply.status === 200 ? reply : null;
              }, {what: `initialize #${round} to be accepted`, timeout_ms: 10_000});
              assert.equal(opened.body.result?.serverInfo?.name, 'sed-echo');
              const pid = await child_pid(log, opened.session_id);
              const response = await fetch(gateway.url, {
                method: 'DELETE',
                headers:
                    {'mcp-session-id': opened.session_id, 'mcp-protocol-version': '2025-06-18'},
                signal: AbortSignal.timeout(request_options.timeout),
              });
              assert.equal(response.status, 200);
              await poll(() => !process_exists(pid), {what: `child ${pid} to be reaped`});
            }
            assert.equal(strays.length, 3, 'the strays did not start');
            assert.ok(strays.every(process_exists), 'a stray did not outlive its parent');
            const samples = await read_metrics(gateway.admin_url);
            assert.equal(samples.get('mcpgate_stdio_processes'), 0);
          });
    });

describe('stdio upstream: a crash loop', {skip: skip_without_gateway}, () => {
  let gateway = null;

  before(async () => {
    gateway = await start_gateway({upstream_command: 'sh -c \'exit 3\'', admin: true});
  });

  after(async () => {
    await stop_all(gateway);
  });

  test(
      'answers initialize with an error naming status 3, then 503 -32035 while backing off',
      {timeout: 60_000}, async () => {
        const replies = [];
        const refused = await poll(async () => {
          const reply = await raw_initialize(gateway.url);
          replies.push(reply);
          return reply.status === 503 ? reply : null;
        }, {what: 'a 503 while the child crash-loops', timeout_ms: 20_000});
        const history = JSON.stringify(replies);
        assert.ok(replies.length >= 2, `the first initialize was refused: ${history}`);
        for (const reply of replies.slice(0, -1)) {
          // Either the child died before answering, or a backoff had not yet been set.
          assert.equal(reply.status, 200, history);
          assert.equal(reply.body.error?.code, stdio_exited_code, history);
          assert.match(reply.body.error.message, /exited with status 3\b/, history);
          assert.doesNotMatch(reply.body.error.message, /stopped by the gateway/, history);
        }
        assert.equal(refused.body.error?.code, -32035, history);
        assert.match(refused.body.error.message, /crash-looping/, history);

        const samples = await read_metrics(gateway.admin_url);
        assert.ok(samples.get('mcpgate_stdio_crashes_total') >= 1, JSON.stringify([...samples]));
        assert.ok(samples.get('mcpgate_stdio_refused_total{reason="crash_backoff"}') >= 1);
        assert.equal(samples.get('mcpgate_stdio_processes'), 0);
      });
});

describe(
    'examples/python-interpreter run as the operator would', {skip: skip_without_gateway}, () => {
      let gateway = null;
      // The example's workspace is git-ignored; what this test writes goes in a folder of its own.
      const scratch = `e2e-stdio-${process.pid}`;
      const workspace = path.join(example_dir, 'workspace');

      before(async () => {
        gateway = await start_gateway({config: example_config});
      });

      after(async () => {
        await stop_all(gateway);
        await rm(path.join(workspace, scratch), {recursive: true, force: true});
      });

      test('answers 401 to a wrong key and serves both demo keys', {timeout: 60_000}, async () => {
        for (const key of ['demo-key-carol', undefined]) {
          const reply = await raw_initialize(gateway.url, {key});
          assert.equal(reply.status, 401, `${key}: ${JSON.stringify(reply)}`);
        }
        for (const key of ['demo-key-alice', 'demo-key-bob']) {
          const {client} = await connect_client(gateway.url, {key});
          try {
            assert.equal(client.getServerVersion()?.name, 'python-interpreter');
            const {tools} = await client.listTools({}, request_options);
            // hide_denied_tools: clear_session is always denied, so it is not listed.
            assert.deepEqual(
                tools.map((tool) => tool.name).sort(),
                interpreter_tools.filter((name) => name !== 'clear_session'));
            const result = await call(client, 'run_python_code', {code: '2 ** 10'});
            assert.match(text_of(result), /--- Output ---\n1024\n$/);
          } finally {
            await client.close();
          }
        }
      });

      test(
          'denies clear_session, and limits list_directory to 60 and write_file to 30 per grant',
          {timeout: 120_000}, async () => {
            const alice = await connect_client(gateway.url, {key: 'demo-key-alice'});
            const bob = await connect_client(gateway.url, {key: 'demo-key-bob'});
            try {
              const denied = await call(alice.client, 'clear_session');
              assert.equal(denied.isError, true);
              assert.deepEqual(denied.content, [{type: 'text', text: approval_text}]);

              for (let i = 0; i < 60; ++i) {
                const result = await call((i % 2 ? bob : alice).client, 'list_directory');
                assert.notEqual(
                    result.isError, true, `list_directory #${i + 1}: ${text_of(result)}`);
              }
              for (const {client} of [alice, bob]) {
                const over = await call(client, 'list_directory');
                assert.equal(over.isError, true);
                assert.equal(over.structuredContent?.decision, 'rate_limited', text_of(over));
                assert.equal(over.structuredContent.counter, 'list_directory_per_minute');
                assert.equal(over.structuredContent.max, 60);
              }

              const file_path = `${scratch}/note.txt`;
              for (let i = 0; i < 30; ++i) {
                const result = await call(
                    (i % 2 ? bob : alice).client, 'write_file',
                    {file_path, content: `write ${i + 1}\n`, overwrite: true});
                assert.notEqual(result.isError, true, `write_file #${i + 1}: ${text_of(result)}`);
                assert.match(text_of(result), /^Successfully wrote to /);
              }
              for (const {client} of [alice, bob]) {
                const over = await call(
                    client, 'write_file', {file_path, content: 'one too many\n', overwrite: true});
                assert.equal(over.isError, true);
                assert.equal(over.structuredContent?.decision, 'rate_limited', text_of(over));
                assert.equal(over.structuredContent.counter, 'write_file_per_hour');
                assert.equal(over.structuredContent.max, 30);
              }
              const read = await call(bob.client, 'read_file', {file_path});
              assert.match(text_of(read), /write 30\n$/);
            } finally {
              await Promise.all([alice.client.close(), bob.client.close()]);
            }
          });

      test(
          'limits the execute and install tools as shipped: code execution cannot outrun them',
          {timeout: 120_000}, async () => {
            const alice = await connect_client(gateway.url, {key: 'demo-key-alice'});
            try {
              for (let i = 0; i < 5; ++i) {
                const result = await call(alice.client, 'install_package', {package_name: 'x'});
                assert.notEqual(result.structuredContent?.decision, 'rate_limited', text_of(result));
              }
              const over = await call(alice.client, 'install_package', {package_name: 'x'});
              assert.equal(over.structuredContent?.decision, 'rate_limited', text_of(over));
              assert.equal(over.structuredContent.counter, 'install_package_per_day');
              // run_python_code and run_python_file share one budget of their own.
              const {tools} = await alice.client.listTools({}, request_options);
              assert.ok(tools.some((tool) => tool.name === 'run_python_file'));
              const report = await new Promise((resolve) => {
                execFile(gateway_bin, ['check', path.join(example_dir, 'policy.json')],
                         (error, stdout) => resolve(stdout));
              });
              assert.match(report, /run_python_code[\s\S]*execute_per_hour/, report);
              assert.match(report, /run_python_file[\s\S]*execute_per_hour/, report);
            } finally {
              await alice.client.close();
            }
          });
    });

describe('mcpgate with no --config or upstream', {skip: skip_without_gateway}, () => {
  let gateway = null;

  before(async () => {
    gateway = await start_gateway();
  });

  after(async () => {
    await stop_all(gateway);
  });

  test(
      'serves the embedded example: the interpreter\'s tools minus clear_session for alice',
      {timeout: 60_000}, async () => {
        assert.equal((await raw_initialize(gateway.url)).status, 401);
        const {client} = await connect_client(gateway.url, {key: 'demo-key-alice'});
        try {
          assert.equal(client.getServerVersion()?.name, 'python-interpreter');
          const {tools} = await client.listTools({}, request_options);
          assert.deepEqual(
              tools.map((tool) => tool.name).sort(),
              interpreter_tools.filter((name) => name !== 'clear_session'));
        } finally {
          await client.close();
        }
      });
});
