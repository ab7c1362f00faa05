// stdio upstreams end to end (issue #5): the gateway starts a real stdio MCP server per session
// (--upstream-command, or a config file's "upstream" object) and SDK clients reach it over
// Streamable HTTP. Covers @modelcontextprotocol/server-filesystem and server-everything in stdio
// mode, the MCP Python Interpreter stand-in (tests/fixtures/python_interpreter_server.py): session
// isolation, a killed child, the gateway's SIGTERM. Children that misbehave and the shipped
// example: stdio_children.test.mjs.
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

import {accept, approval_text, call, child_pid, collect_log, command_line, example_config, example_dir, fixture, interpreter_tools, metric, node, process_exists, quote, raw_initialize, stdio_exited_code} from './lib/stdio.mjs';

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
