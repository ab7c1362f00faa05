// The Debian package (issue #21): it installs, its unit passes `systemd-analyze verify`, the
// binary runs as the unit would (its own unprivileged user, the memlock limit, the state and
// log directories systemd would make, ExecStartPre then ExecStart), serves the packaged
// example, reloads as ExecReload does, and its audit log survives a real logrotate cycle.
// Needs root (dpkg) and the package built (cmake --build --preset release --target package,
// which tools/test does); without either it is skipped, saying why. No systemd runs on these
// machines, so `systemctl` itself is not exercised.
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {existsSync, readdirSync} from 'node:fs';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {gateway_bin, poll, start_process} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

const build_dir = gateway_bin ? path.dirname(gateway_bin) : null;
const deb = build_dir && existsSync(build_dir) ?
    readdirSync(build_dir).filter((f) => /^mcpgate_.*\.deb$/.test(f)).map((f) => path.join(build_dir, f))[0] :
    undefined;
const skip = !gateway_bin                 ? 'MCPGATE_BIN is not set' :
             process.getuid() !== 0       ? 'installing a package needs root' :
             !deb                         ? `no package in ${build_dir} (build the "package" target)` :
             !existsSync('/usr/sbin/logrotate') ? 'logrotate is not installed (tools/setup installs it)' :
                                            false;
const unit_file = '/lib/systemd/system/mcpgate.service';
const audit_log = '/var/log/mcpgate/audit.log';

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    execFile(command, args, {timeout: 60_000, ...options}, (error, stdout, stderr) => {
      resolve({code: error ? (error.code ?? 1) : 0, stdout, stderr});
    });
  });
}

// The unit's Exec lines, by key, as argv arrays ($MAINPID left for the caller).
async function unit_commands() {
  const commands = {};
  for (const line of (await readFile(unit_file, 'utf8')).split('\n')) {
    const match = /^(Exec\w+)=(.*)$/.exec(line);
    if (match) (commands[match[1]] ??= []).push(match[2].split(/\s+/));
  }
  return commands;
}

async function audit_lines(file) {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('the Debian package', {skip}, () => {
  let gateway = null;
  let state = null;

  before(async () => {
    state = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-package-'));
    const installed = await run('dpkg', ['-i', deb]);
    assert.equal(installed.code, 0, installed.stderr);
  });

  after(async () => {
    if (gateway) await gateway.stop();
    await run('dpkg', ['--purge', 'mcpgate']);
    await rm('/var/lib/mcpgate', {recursive: true, force: true});
    await rm('/var/log/mcpgate', {recursive: true, force: true});
    if (state) await rm(state, {recursive: true, force: true});
  });

  test('installs the binary, man page, unit, logrotate rule and a config that checks',
       async () => {
         const version = await run('/usr/bin/mcpgate', ['--version']);
         assert.match(version.stdout, /^mcpgate \d+\.\d+\.\d+ \(commit [0-9a-f]+/);
         for (const file of ['/usr/share/man/man1/mcpgate.1', unit_file, '/etc/logrotate.d/mcpgate',
                             '/etc/mcpgate/mcpgate.json', '/etc/mcpgate/policy.json',
                             '/usr/share/mcpgate/examples/python-interpreter/python_interpreter_server.py'])
           assert.ok(existsSync(file), `${file} is not installed`);
         const conffiles = await run('dpkg-query', ['--showformat=${Conffiles}', '--show', 'mcpgate']);
         assert.match(conffiles.stdout, /\/etc\/mcpgate\/mcpgate\.json/);
         const verified = await run('systemd-analyze', ['verify', '--man=no', unit_file]);
         assert.equal(verified.code, 0, verified.stderr);
         assert.equal(verified.stderr.split('\n').filter((l) => l.includes('mcpgate')).join('\n'), '');
         const unit = await readFile(unit_file, 'utf8');
         for (const line of ['DynamicUser=yes', 'ProtectSystem=strict', 'NoNewPrivileges=yes',
                             'LimitMEMLOCK=infinity', 'ExecReload=/bin/kill -HUP $MAINPID'])
           assert.ok(unit.includes(`\n${line}\n`), `the unit lacks ${line}`);
       });

  test('runs as the unit would, serves the example, reloads, and keeps its audit log ' +
           'through logrotate',
       {timeout: 120_000}, async () => {
         const commands = await unit_commands();
         // What systemd does for DynamicUser, StateDirectory and LogsDirectory: an unprivileged
         // user owning /var/lib/mcpgate and /var/log/mcpgate. nobody stands in for the
         // dynamic user.
         for (const dir of ['/var/lib/mcpgate', '/var/log/mcpgate']) {
           assert.equal((await run('install', ['-d', '-o', 'nobody', '-g', 'nogroup', '-m', '0750', dir])).code, 0);
         }
         // LimitMEMLOCK=infinity, where this machine lets root raise it (a container without
         // CAP_SYS_RESOURCE keeps its hard limit, 8 MiB here, which two shards fit in).
         const memlock = (await run('prlimit', ['--memlock=unlimited:unlimited', 'true'])).code === 0
                             ? ['--memlock=unlimited:unlimited']
                             : [];
         const as_unit = (argv) => [...memlock, 'setpriv', '--reuid=nobody', '--regid=nogroup',
                                    '--clear-groups', '--no-new-privs', ...argv];
         for (const argv of commands.ExecStartPre) {
           const pre = await run('prlimit', as_unit(argv), {cwd: '/var/lib/mcpgate'});
           assert.equal(pre.code, 0, `${argv.join(' ')}: ${pre.stderr}`);
         }
         const [start] = commands.ExecStart;
         // One change: any free port instead of 8080, which another program here may hold.
         gateway = start_process('mcpgate (packaged)', 'prlimit',
                                 as_unit([...start, '--listen', '127.0.0.1:0']),
                                 {cwd: '/var/lib/mcpgate'});
         const [, port] = await gateway.wait_for_line(/^mcpgate: listening on 127\.0\.0\.1:(\d+)$/,
                                                      {timeout_ms: 20_000});
         const url = `http://127.0.0.1:${port}/mcp`;
         const {client} = await connect_client(url, {key: 'demo-key-alice'});
         const {tools} = await client.listTools({}, request_options);
         assert.ok(tools.some((t) => t.name === 'run_python_code'));
         assert.ok(!tools.some((t) => t.name === 'clear_session'), 'the seed policy hides it');
         const denied = await client.callTool({name: 'clear_session', arguments: {}}, undefined,
                                              request_options);
         assert.equal(denied.isError, true);
         assert.equal(text_of(await client.callTool({name: 'list_directory', arguments: {}},
                                                    undefined, request_options)).length > 0, true);
         const before_rotation = await poll(async () => {
           const lines = await audit_lines(audit_log);
           return lines.some((l) => l.tool === 'list_directory') ? lines : null;
         }, {what: 'the audit lines of the first calls'});

         // systemctl reload: ExecReload's check, then SIGHUP to the main process.
         const reloaded = gateway.wait_for_line(/^mcpgate: SIGHUP: reloaded \(generation 2\)/);
         for (const argv of commands.ExecReload) {
           const resolved = argv.map((a) => (a === '$MAINPID' ? String(gateway.pid) : a));
           const r = await run(resolved[0], resolved.slice(1));
           assert.equal(r.code, 0, `${resolved.join(' ')}: ${r.stderr}`);
         }
         await reloaded;

         // A logrotate cycle with the packaged rule; postrotate's SIGUSR1 reopens the file.
         const rotated = await run('/usr/sbin/logrotate',
                                   ['-f', '-s', path.join(state, 'logrotate.status'),
                                    '/etc/logrotate.d/mcpgate']);
         assert.equal(rotated.code, 0, rotated.stderr);
         assert.ok(existsSync(`${audit_log}.1`), 'no rotated audit.log.1');
         await client.callTool({name: 'list_sessions', arguments: {}}, undefined, request_options);
         const after_rotation = await poll(async () => {
           const lines = await audit_lines(audit_log);
           return lines.some((l) => l.tool === 'list_sessions') ? lines : null;
         }, {what: 'the next call\'s line in the reopened audit.log'});
         const old_lines = await audit_lines(`${audit_log}.1`);
         for (const line of before_rotation)
           assert.ok(old_lines.some((l) => l.ts === line.ts && l.req === line.req),
                     `line of req ${line.req} lost in the rotation`);
         assert.ok(!after_rotation.some((l) => l.tool === 'list_directory'),
                   'lines written before the rotation are in the new file too');
         await client.close();

         const stopped = await gateway.stop();
         assert.equal(stopped.code, 0);
         gateway = null;
       });
});
