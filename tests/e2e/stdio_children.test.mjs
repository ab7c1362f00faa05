// stdio upstreams end to end, continued (see stdio.test.mjs): children that misbehave (one
// ignoring SIGTERM, one leaving a stray on its stdout, one crash-looping), and
// examples/python-interpreter/ run as an operator would run it, by its file and as the
// embedded default.

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
