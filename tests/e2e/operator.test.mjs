// What an operator of nginx or HAProxy expects on the command line and in the logs (issue
// #21): --help and --version, hash-key, check telling configs from policies and warning of
// tool names a server lacks, errors with line and column or the config key and errno,
// timestamped stderr (text or JSON), the open-relay warning, /admin/limits, /admin/reload, the
// build and reload metrics, and audit lines naming the session of an initialize and the
// method of a DELETE.
import assert from 'node:assert/strict';
import {execFile, spawn} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdir, mkdtemp, readFile, rename, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {gateway_bin, log_prefix, poll, read_metrics, skip_without_gateway, source_root, start_gateway, start_process, stop_all} from './lib/harness.mjs';
import {connect_client, request_options} from './lib/sdk_client.mjs';

const fixture = path.join(source_root, 'tests', 'fixtures', 'changing_tool_server.py');

function run_cli(args, {input} = {}) {
  return new Promise((resolve) => {
    const child = execFile(gateway_bin, args, {timeout: 30_000}, (error, stdout, stderr) => {
      resolve({code: error ? (error.code ?? 1) : 0, stdout, stderr});
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

const sha256_hex = (text) => createHash('sha256').update(text).digest('hex');

describe('the command line', {skip: skip_without_gateway}, () => {
  let dir = null;
  before(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-operator-')); });
  after(async () => { if (dir) await rm(dir, {recursive: true, force: true}); });

  test('--help lists every subcommand, the signals and the exit codes; --version the commit',
       async () => {
         const help = await run_cli(['--help']);
         assert.equal(help.code, 0);
         for (const word of ['mcpgate check', 'mcpgate catalogue', 'mcpgate pins diff|accept',
                             'mcpgate hash-key', '--log-format', 'SIGHUP', 'SIGUSR1', 'SIGTERM',
                             'Exit status:'])
           assert.ok(help.stdout.includes(word), `--help does not mention ${word}`);
         const version = await run_cli(['--version']);
         assert.match(version.stdout, /^mcpgate \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,}(-dirty)?|unknown)\)\nbuilt with \S+ [\d.]+ \S+ .*-O/);
       });

  test('hash-key prints the SHA-256 of a key given or read from stdin', async () => {
    const expected = sha256_hex('demo-key-alice');
    assert.equal((await run_cli(['hash-key', 'demo-key-alice'])).stdout, `${expected}\n`);
    assert.equal((await run_cli(['hash-key'], {input: 'demo-key-alice\n'})).stdout, `${expected}\n`);
    assert.equal((await run_cli(['hash-key'], {input: ''})).code, 2);
  });

  test('a subcommand survives the SIGUSR1 and SIGHUP logrotate may send every mcpgate',
       {timeout: 30_000}, async () => {
         // The packaged logrotate rule falls back to `pkill -USR1 -x mcpgate` without systemd.
         const child = spawn(gateway_bin, ['hash-key'], {stdio: ['pipe', 'pipe', 'pipe']});
         let out = '';
         child.stdout.on('data', (d) => { out += d; });
         const exited = new Promise((resolve) => child.on('exit', (code, signal) =>
                                                            resolve({code, signal})));
         // hash-key waits for stdin: signal it once its main() has begun (SIGUSR1, signal 10,
         // is bit 9 of the blocked mask the kernel reports).
         await poll(async () => {
           const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
           const blocked = /SigBlk:\s*([0-9a-f]+)/.exec(status);
           return blocked && (BigInt(`0x${blocked[1]}`) & (1n << 9n)) !== 0n;
         }, {what: 'hash-key running with SIGUSR1 blocked'});
         child.kill('SIGUSR1');
         child.kill('SIGHUP');
         child.stdin.end('demo-key-alice\n');
         assert.deepEqual(await exited, {code: 0, signal: null});
         assert.equal(out, `${sha256_hex('demo-key-alice')}\n`);
       });

  test('the embedded default needs no source tree: its policy and server come from the binary',
       {timeout: 30_000}, async () => {
         const runtime = path.join(dir, 'runtime');
         await mkdir(runtime, {mode: 0o700});
         const gateway = await start_gateway({cwd: os.tmpdir(), env: {XDG_RUNTIME_DIR: runtime}});
         try {
           // The banner follows the listening line at once: read it from the output kept so far.
           const banner = await poll(() => /mcpgate: \d+ shards?, upstream (.*?), /.exec(gateway.process.describe()),
                                     {what: 'the start-up banner'});
           assert.equal(banner[1], 'stdio: python3 python_interpreter_server.py --dir workspace');
           const home = path.join(runtime, 'mcpgate-default');
           const policy = JSON.parse(await readFile(path.join(home, 'policy.json'), 'utf8'));
           assert.ok(policy.tools.clear_session);
           const server = await readFile(path.join(home, 'python_interpreter_server.py'), 'utf8');
           assert.match(server, /MCP Python Interpreter/);
         } finally {
           await gateway.stop();
         }
       });

  test('tools/run installs only what the gateway needs and builds the gateway alone',
       {timeout: 120_000}, async () => {
         const run = await readFile(path.join(source_root, 'tools', 'run'), 'utf8');
         assert.match(run, /tools\/setup" --runtime\n/);
         assert.match(run, /cmake --build --preset run .*--target mcpgate\n/);
         // What --runtime installs: the compiler, the libraries, python3; no peers or tools.
         const setup = await readFile(path.join(source_root, 'tools', 'setup'), 'utf8');
         const runtime = /runtime_packages=\(([^)]*)\)/.exec(setup)[1].split(/\s+/).filter(Boolean);
         for (const peer of ['nginx-light', 'haproxy', 'prometheus', 'redis-server', 'nodejs', 'libgtest-dev'])
           assert.ok(!runtime.includes(peer), `--runtime installs ${peer}`);
         // The run preset configures no test or benchmark target.
         const build = path.join(dir, 'run-preset');
         const configured = await new Promise((resolve) => execFile(
             'cmake', ['--preset', 'run', '-B', build], {cwd: source_root, timeout: 110_000},
             (error, stdout, stderr) => resolve({code: error ? 1 : 0, stderr})));
         assert.equal(configured.code, 0, configured.stderr);
         const targets = await new Promise((resolve) => execFile(
             'cmake', ['--build', build, '--target', 'help'], {timeout: 30_000},
             (error, stdout) => resolve(stdout)));
         assert.match(targets, /\bmcpgate\b/);
         for (const absent of ['policy_tests', 'net_tests', 'mcpbench', 'relay_bench'])
           assert.doesNotMatch(targets, new RegExp(`\\b${absent}\\b`), `${absent} is configured`);
       });

  test('check reads a file with config keys as a config, and names key and known keys',
       async () => {
         const config = path.join(dir, 'deny-as.json');
         await writeFile(config, '{"deny_as": "error"}');
         const as_config = await run_cli(['check', config]);
         assert.equal(as_config.code, 0, as_config.stderr);
         assert.match(as_config.stdout, /valid gateway config/);

         const policy = path.join(dir, 'unknown-key.json');
         await writeFile(policy, '{"version": "1", "hidden": []}');
         const unknown = await run_cli(['check', policy]);
         assert.equal(unknown.code, 1);
         assert.ok(unknown.stderr.includes(
             `${policy}: $.hidden: unknown key "hidden" (known: version, default, hide, all_tools, tools)`),
                   unknown.stderr);

         const broken = path.join(dir, 'broken.json');
         await writeFile(broken, '{"version": "1",\n "tools": {"a": {"deny_if": [}\n}');
         const syntax = await run_cli(['check', broken]);
         assert.equal(syntax.code, 1);
         assert.match(syntax.stderr, /broken\.json: \$: invalid JSON: line 2, column 30: expected a value/);

         const missing = path.join(dir, 'missing-policy.json');
         await writeFile(missing, JSON.stringify({grants: {ops: {policy: 'nope.json'}}, identities: []}));
         const gone = await run_cli(['check', missing]);
         assert.equal(gone.code, 1);
         assert.ok(gone.stderr.includes(`${missing}: $.grants.ops.policy: cannot read the policy file ` +
                                        `${path.join(dir, 'nope.json')}: No such file or directory`),
                   gone.stderr);
       });

  test('check with a server warns of a policy tool the server does not have, and exits 3',
       async () => {
         const description = path.join(dir, 'description.txt');
         await writeFile(description, 'Fetch a page.');
         const policy = path.join(dir, 'typo.json');
         await writeFile(policy, JSON.stringify({'fetch-page': {deny_if: [{conditions: []}]}, word_count: {}}));
         const r = await run_cli(['check', policy, '--', 'python3', fixture, description]);
         assert.equal(r.code, 3, r.stderr);
         assert.match(r.stderr, /warning: .*typo\.json: tool "fetch-page" is not a tool of stdio: python3 .* \(did you mean "fetch_page"\?\); under default allow, the server's own tool is not covered by this rule/);
         assert.doesNotMatch(r.stderr, /word_count/);
         const fixed = path.join(dir, 'fixed.json');
         await writeFile(fixed, JSON.stringify({fetch_page: {deny_if: [{conditions: []}]}}));
         assert.equal((await run_cli(['check', fixed, '--', 'python3', fixture, description])).code, 0);
       });


  test('check --upstream URL warns of a policy tool the HTTP server does not have',
       {timeout: 30_000}, async () => {
         const description = path.join(dir, 'http-description.txt');
         await writeFile(description, 'Fetch a page.');
         const gateway = await start_gateway({upstream_command: `python3 ${fixture} ${description}`});
         try {
           const policy = path.join(dir, 'typo-http.json');
           await writeFile(policy, JSON.stringify({fetch_pages: {deny_if: [{conditions: []}]}}));
           const r = await run_cli(['check', policy, '--upstream', gateway.url]);
           assert.equal(r.code, 3, r.stderr);
           assert.match(r.stderr, new RegExp(`warning: .*typo-http\\.json: tool "fetch_pages" is not a tool of ${gateway.url.replace(/[.]/g, '\\.')} \\(did you mean "fetch_page"\\?\\)`));
         } finally {
           await stop_all(gateway);
         }
       });

  test('cmake --install writes the installed paths into the unit and the configs, and the ' +
           'installed example runs from where it is installed',
       {timeout: 60_000}, async () => {
         const root = path.join(dir, 'destdir');
         const installed = await new Promise((resolve) => {
           execFile('cmake', ['--install', path.dirname(gateway_bin), '--prefix', '/opt/mcpgate'],
                    {timeout: 60_000, env: {...process.env, DESTDIR: root}},
                    (error, stdout, stderr) => resolve({code: error ? 1 : 0, stderr}));
         });
         assert.equal(installed.code, 0, installed.stderr);
         const prefix = path.join(root, 'opt', 'mcpgate');
         const unit = await readFile(path.join(prefix, 'lib/systemd/system/mcpgate.service'), 'utf8');
         assert.match(unit, /^ExecStart=\/opt\/mcpgate\/bin\/mcpgate --config \/etc\/mcpgate\/mcpgate\.json$/m);
         assert.match(unit, /^ExecStartPre=\/opt\/mcpgate\/bin\/mcpgate check /m);
         assert.doesNotMatch(unit, /@bindir@|\/usr\/bin\/mcpgate/);
         const service_config = JSON.parse(await readFile(path.join(root, 'etc/mcpgate/mcpgate.json'), 'utf8'));
         const example_dir = path.join(prefix, 'share/mcpgate/examples/python-interpreter');
         assert.equal(service_config.upstream.command[1],
                      '/opt/mcpgate/share/mcpgate/examples/python-interpreter/python_interpreter_server.py');
         const example = path.join(example_dir, 'mcpgate.json');
         assert.equal(JSON.parse(await readFile(example, 'utf8')).upstream.command[1],
                      'python_interpreter_server.py');
         const gateway = await start_gateway({config: example});
         try {
           const {client} = await connect_client(gateway.url, {key: 'demo-key-alice'});
           const {tools} = await client.listTools({}, request_options);
           assert.ok(tools.some((t) => t.name === 'run_python_code'));
           await client.close();
         } finally {
           await stop_all(gateway);
         }
       });
});

describe('logs, admin routes and metrics', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let audit = null;
  let config = null;
  const key = 'operator-key';

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-operator-logs-'));
    await writeFile(path.join(dir, 'description.txt'), 'Fetch a page.');
    await writeFile(path.join(dir, 'policy.json'), JSON.stringify({
      word_count: {limits: [{counter: 'words', window: 'hour', max: 3, scope: 'grant'}]},
    }));
    audit = path.join(dir, 'audit.log');
    config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({
      upstream: {command: ['python3', fixture, path.join(dir, 'description.txt')]},
      identities: [{name: 'ops', key_sha256: sha256_hex(key), grant: 'ops'}],
      grants: {ops: {policy: 'policy.json'}},
      audit: {path: audit, flush_interval_ms: 10},
    }));
    gateway = await start_gateway({config, admin: true});
  });
  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('stderr lines carry an RFC 3339 timestamp and a level, or are JSON', async () => {
    const lines = [];
    const child = spawn(gateway_bin, ['--upstream', 'http://127.0.0.1:9/mcp', '--listen', '127.0.0.1:0'],
                        {stdio: ['ignore', 'ignore', 'pipe']});
    child.stderr.on('data', (chunk) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    await poll(() => lines.some((l) => l.includes('listening on')) || null, {what: 'the listening line'});
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('close', resolve));
    assert.match(lines[0], log_prefix);
    assert.match(lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z info mcpgate: listening on 127\.0\.0\.1:\d+$/);

    const json = await run_cli(['--upstream', 'http://127.0.0.1:9/mcp', '--listen', '300.0.0.1:1',
                                '--log-format', 'json']);
    assert.equal(json.code, 1);
    const line = JSON.parse(json.stderr.trim().split('\n')[0]);
    assert.equal(line.level, 'error');
    assert.match(line.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.match(line.msg, /^mcpgate: /);
    assert.equal((await run_cli(['--log-format', 'xml'])).code, 1);
  });

  test('a listener off loopback without identities is announced as an open relay', async () => {
    const relay = start_process('open relay', gateway_bin,
                                ['--upstream', 'http://127.0.0.1:9/mcp', '--listen', '0.0.0.0:0']);
    try {
      const [line] = await relay.wait_for_line(/^mcpgate: listening on 0\.0\.0\.0:\d+, off loopback, with no identities: .*open relay/);
      assert.ok(line);
    } finally {
      await relay.stop();
    }
  });

  test('/admin/limits shows each counter in use; /admin/reload and the metrics the reloads',
       {timeout: 60_000}, async () => {
         const {client} = await connect_client(gateway.url, {key});
         for (let i = 0; i < 3; ++i)
           await client.callTool({name: 'word_count', arguments: {text: 'a b'}}, undefined, request_options);
         const limits = await (await fetch(`${gateway.admin_url}/admin/limits`)).json();
         const words = limits.limits.find((l) => l.counter === 'words');
         assert.deepEqual({used: words.used, max: words.max, window: words.window, scope: words.scope, key: words.key},
                          {used: 3, max: 3, window: 'hour', scope: 'grant', key: 'ops'});
         assert.ok(words.next_free_ms > 3_500_000 && words.next_free_ms <= 3_600_000, String(words.next_free_ms));

         let metrics = await read_metrics(gateway.admin_url);
         assert.equal(metrics.get('mcpgate_config_generation'), 1);
         assert.equal(metrics.get('mcpgate_reloads_total{result="ok"}'), 0);
         assert.ok([...metrics.keys()].some((k) => /^mcpgate_build_info\{version="[\d.]+",commit="[^"]+"\}$/.test(k)));
         let reload = await (await fetch(`${gateway.admin_url}/admin/reload`)).json();
         assert.equal(reload.last.result, 'none');

         await writeFile(path.join(dir, 'policy.json'), '{"word_count": {"limit": []}}');
         const rejected = gateway.process.wait_for_line(/reload rejected/);
         process.kill(gateway.process.pid, 'SIGHUP');
         await rejected;
         reload = await (await fetch(`${gateway.admin_url}/admin/reload`)).json();
         assert.equal(reload.last.result, 'rejected');
         assert.match(reload.last.error, /unknown key "limit"/);
         assert.equal(reload.generation, 1);

         await writeFile(path.join(dir, 'policy.json'), '{"word_count": {}}');
         const reloaded = gateway.process.wait_for_line(/SIGHUP: reloaded \(generation 2\)/);
         process.kill(gateway.process.pid, 'SIGHUP');
         await reloaded;
         reload = await (await fetch(`${gateway.admin_url}/admin/reload`)).json();
         assert.equal(reload.last.result, 'ok');
         assert.equal(reload.last.error, null);
         assert.equal(reload.generation, 2);
         metrics = await read_metrics(gateway.admin_url);
         assert.equal(metrics.get('mcpgate_config_generation'), 2);
         assert.equal(metrics.get('mcpgate_reloads_total{result="ok"}'), 1);
         assert.equal(metrics.get('mcpgate_reloads_total{result="rejected"}'), 1);
         await client.close();
       });

  test('the 401 answers the request\'s id when its body came with the head', async () => {
    const post = async (body) => {
      const response = await fetch(gateway.url, {
        method: 'POST',
        headers: {'content-type': 'application/json', accept: 'application/json, text/event-stream'},
        body,
      });
      return {status: response.status, body: await response.json()};
    };
    const single = await post(JSON.stringify({jsonrpc: '2.0', id: 'probe-1', method: 'tools/list'}));
    assert.equal(single.status, 401);
    assert.equal(single.body.id, 'probe-1');
    assert.equal(single.body.error.code, -32040);
    const batch = await post(JSON.stringify([{jsonrpc: '2.0', id: 'probe-2', method: 'tools/list'}]));
    assert.equal(batch.status, 401);
    assert.equal(batch.body.id, null, 'a batch has no one id to answer');
    const broken = await post('{"jsonrpc": "2.0", "id": 7,');
    assert.equal(broken.status, 401);
    assert.equal(broken.body.id, null);
  });

  test('catalogue --header reaches a server behind a bearer key', {timeout: 60_000}, async () => {
    const listed = await run_cli(['catalogue', '--upstream', gateway.url, '--json',
                                  '--header', `Authorization: Bearer ${key}`]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout).tools.map((t) => t.name).sort(),
                     ['fetch_page', 'word_count']);
    const refused = await run_cli(['catalogue', '--upstream', gateway.url]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /401/);
    const malformed = await run_cli(['catalogue', '--upstream', gateway.url, '--header', 'no colon']);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /--header: expected NAME:VALUE/);
  });

  test('the audit line of an initialize names its session, and a DELETE its method',
       {timeout: 30_000}, async () => {
         const {client, transport} = await connect_client(gateway.url, {key});
         const session = transport.sessionId;
         assert.ok(session);
         await transport.terminateSession();
         await client.close();
         const lines = await poll(async () => {
           const all = (await readFile(audit, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
           return all.some((l) => l.method === 'DELETE') ? all : null;
         }, {what: 'the DELETE in the audit log'});
         const initialize = lines.filter((l) => l.method === 'initialize').at(-1);
         const deleted = lines.find((l) => l.method === 'DELETE');
         assert.equal(typeof initialize.session, 'string');
         assert.ok(initialize.session.length > 0);
         assert.equal(deleted.session, initialize.session, 'the DELETE ends the session the initialize began');
         assert.equal(deleted.decision, 'allowed');
       });

  test('SIGUSR1 reopens the audit log: lines before go to the rotated file, after to the new',
       {timeout: 30_000}, async () => {
         const {client} = await connect_client(gateway.url, {key});
         await client.callTool({name: 'fetch_page', arguments: {url: 'before'}}, undefined, request_options);
         const lines_of = async (file) => (await readFile(file, 'utf8').catch(() => ''))
                                               .split('\n').filter(Boolean).map((l) => JSON.parse(l));
         await poll(async () => (await lines_of(audit)).some((l) => l.tool === 'fetch_page') || null,
                    {what: 'the first call in the audit log'});
         const rotated = `${audit}.1`;
         await rename(audit, rotated);
         process.kill(gateway.process.pid, 'SIGUSR1');
         // The reopen is seen when a request's line lands in the new file.
         const after = await poll(async () => {
           await client.listTools({}, request_options);
           const lines = await lines_of(audit);
           return lines.some((l) => l.method === 'tools/list') ? lines : null;
         }, {what: 'a line in the reopened audit log'});
         assert.ok(!after.some((l) => l.tool === 'fetch_page'), 'the new file starts after the rotation');
         assert.ok((await lines_of(rotated)).some((l) => l.tool === 'fetch_page'));
         await client.close();
       });
});
