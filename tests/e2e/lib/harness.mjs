// Shared plumbing for the end-to-end tests: real processes (an upstream MCP server, the gateway
// in front of it) on loopback, each in its own process group so that stopping it also stops
// whatever it spawned, and all of them killed when the test process ends, whatever the outcome.
//
// Environment (set by CTest, see tests/CMakeLists.txt):
//   MCPGATE_BIN     the gateway binary; when unset or empty every e2e test skips.
//   MCPGATE_SOURCE  the repository root; defaults to the checkout holding this file.
import {spawn} from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// tests/e2e, where package.json and node_modules live. Paths derive from this file, never from
// the current directory, because CTest runs the tests from the build tree.
export const e2e_dir = path.resolve(here, '..');
export const source_root = process.env.MCPGATE_SOURCE || path.resolve(e2e_dir, '..', '..');
export const gateway_bin = process.env.MCPGATE_BIN || null;

// The `skip` option for every e2e suite: a reason string when there is no gateway to test.
export const skip_without_gateway = gateway_bin ? false : 'MCPGATE_BIN is not set';

// Resolves a file inside an installed npm package of tests/e2e/node_modules.
export function package_file(package_name, relative_path) {
  return path.join(e2e_dir, 'node_modules', ...package_name.split('/'), relative_path);
}

const loopback = '127.0.0.1';
const loopback_preload = pathToFileURL(path.join(here, 'loopback_listen.mjs')).href;

// Returns a TCP port that was free on 127.0.0.1 a moment ago. Another process may take it
// before the caller binds it, so prefer handing port 0 to the process and reading back the
// real port; this is for programs that cannot report theirs.
export function free_port() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, loopback, () => {
      const {port} = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Calls `probe` until it returns something other than undefined, null or false, and returns
// that. A probe that throws counts as "not yet"; its last error is reported on timeout, as is
// `what`, so a failed wait says what it waited for.
export async function poll(probe, {what, timeout_ms = 10_000, interval_ms = 25} = {}) {
  const deadline = Date.now() + timeout_ms;
  let last_error;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      last_error = error;
    }
    if (Date.now() >= deadline) {
      const cause = last_error ? `; last error: ${last_error.message ?? last_error}` : '';
      throw new Error(
          `timed out after ${timeout_ms} ms waiting for ${what ?? 'a condition'}${cause}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval_ms));
  }
}

// Every process group started here and not yet reaped, so that an exit of the test process,
// normal or not, can still kill them.
const live_groups = new Set();

function kill_group(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if (error.code !== 'ESRCH') throw error;
  }
}

function kill_all_groups() {
  for (const pid of live_groups) kill_group(pid, 'SIGKILL');
  live_groups.clear();
}

// 'exit' handlers may only do synchronous work; process.kill is synchronous.
process.on('exit', kill_all_groups);
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(signal, () => {
    kill_all_groups();
    process.exit(128 + number);
  });
}

const tail_limit = 400;

// A child process in its own process group, with its output kept (the last `tail_limit` lines)
// for failure messages and matched line by line for readiness. Output is always drained: a child
// blocked on a full pipe would look like a hung gateway.
// "2026-12-03T13:21:52.123456Z info " (core/stderr_log.h).
export const log_prefix = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (?:info|warn|error) /;

class managed_process {
  constructor(name, command, args, {env, cwd} = {}) {
    this.name_ = name;
    this.command_line_ = [command, ...args].join(' ');
    this.tail_ = [];
    this.line_watchers_ = new Set();
    this.result_ = null;
    const child_env = {...process.env, ...env};
    // Set by `node --test` for its own children; a Node peer that inherited it would talk the
    // test runner's protocol on stdout.
    delete child_env.NODE_TEST_CONTEXT;
    this.child_ = spawn(command, args, {
      cwd: cwd ?? e2e_dir,
      env: child_env,
      detached: true,  // setsid: a group of its own, killable as one
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid_ = this.child_.pid;
    if (this.pid_ !== undefined) live_groups.add(this.pid_);
    this.exited_ = new Promise((resolve) => {
      this.child_.once('error', (error) => {
        this.record_line('spawn', `cannot start ${this.command_line_}: ${error.message}`);
        this.result_ ??= {code: null, signal: null, error};
        resolve(this.result_);
      });
      this.child_.once('close', (code, signal) => {
        this.result_ ??= {code, signal};
        resolve(this.result_);
      });
    });
    this.exited_.then(() => {
      // The leader is gone; anything it left behind in its group goes too.
      if (this.pid_ !== undefined) {
        kill_group(this.pid_, 'SIGKILL');
        live_groups.delete(this.pid_);
      }
    });
    for (const stream_name of ['stdout', 'stderr']) {
      let partial = '';
      this.child_[stream_name].setEncoding('utf8');
      this.child_[stream_name].on('data', (chunk) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop();
        for (const line of lines) this.record_line(stream_name, line.replace(/\r$/, ''));
      });
      this.child_[stream_name].on('end', () => {
        if (partial !== '') this.record_line(stream_name, partial);
        partial = '';
      });
    }
  }

  get pid() { return this.pid_; }
  get name() { return this.name_; }
  // Resolves with { code, signal } once the process has exited and its pipes are closed.
  get exited() { return this.exited_; }
  get has_exited() { return this.result_ !== null; }

  record_line(stream_name, line) {
    this.tail_.push(`[${stream_name}] ${line}`);
    if (this.tail_.length > tail_limit) this.tail_.shift();
    // The gateway's stderr lines open with a timestamp and a level (core/stderr_log.h); the
    // watchers see the message alone, so that patterns can anchor at "mcpgate: ".
    if (stream_name === 'stderr') line = line.replace(log_prefix, '');
    for (const watcher of this.line_watchers_) watcher(stream_name, line);
  }

  // Calls `on_line(stream_name, line)` for every later line of output; returns the unwatch call.
  watch_lines(on_line) {
    this.line_watchers_.add(on_line);
    return () => this.line_watchers_.delete(on_line);
  }

  // The last lines of output, for failure messages.
  describe() {
    const status = this.result_ ? ` (exited: ${JSON.stringify(this.result_)})` : '';
    const output = this.tail_.join('\n');
    return `${this.name_}: ${this.command_line_}${status}\n--- last output ---\n${output}`;
  }

  // Resolves with the first match of `pattern` on a line of `stream_name` output. Rejects if the
  // process exits first or `timeout_ms` passes, with the output so far in the message.
  wait_for_line(pattern, {stream_name = 'stderr', timeout_ms = 15_000} = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const finish = (settle, value) => {
        clearTimeout(timer);
        unwatch();
        settle(value);
      };
      const unwatch = this.watch_lines((name, line) => {
        if (name !== stream_name) return;
        const match = pattern.exec(line);
        if (match) finish(resolve, match);
      });
      const fail = (why) => finish(reject, new Error(`${why}\n${this.describe()}`));
      const waited_for = `${pattern} on ${stream_name}`;
      timer = setTimeout(
          () => fail(`timed out after ${timeout_ms} ms waiting for ${waited_for}`), timeout_ms);
      this.exited_.then(() => fail(`exited before printing ${waited_for}`));
    });
  }

  // Sends `signal` to the whole group and waits up to `timeout_ms` for the leader to exit, then
  // kills the group. Resolves with { code, signal, killed } where killed says the grace period
  // ran out. Safe to call more than once and after the process has exited.
  async stop({signal = 'SIGTERM', timeout_ms = 5_000} = {}) {
    if (this.result_) return {...this.result_, killed: false};
    if (this.pid_ !== undefined) kill_group(this.pid_, signal);
    let timer;
    const timed_out = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeout_ms);
    });
    const result = await Promise.race([this.exited_, timed_out]);
    clearTimeout(timer);
    if (result) return {...result, killed: false};
    if (this.pid_ !== undefined) kill_group(this.pid_, 'SIGKILL');
    return {...(await this.exited_), killed: true};
  }
}

// Starts `command` in its own process group. The caller owns the result and should stop() it;
// the test process kills it on exit regardless.
export function start_process(name, command, args, options) {
  return new managed_process(name, command, args, options);
}

const peer_listening = /^e2e-peer: listening on 127\.0\.0\.1:(\d+)$/;

// Starts @modelcontextprotocol/server-everything in Streamable HTTP mode (its CLI's
// `streamableHttp` argument; PORT selects the port and the path is fixed at /mcp) on a port of
// its own choosing on 127.0.0.1. Resolves once it listens, with { url, port, process, stop }.
export async function start_upstream({timeout_ms = 20_000, port = 0} = {}) {
  const entry = package_file('@modelcontextprotocol/server-everything', 'dist/index.js');
  const child = start_process(
      'server-everything', process.execPath,
      ['--import', loopback_preload, entry, 'streamableHttp'], {env: {PORT: String(port)}});
  try {
    const [, port] = await child.wait_for_line(peer_listening, {timeout_ms});
    return {
      url: `http://${loopback}:${port}/mcp`,
      port: Number(port),
      process: child,
      stop: (options) => child.stop(options),
    };
  } catch (error) {
    await child.stop({signal: 'SIGKILL'});
    throw error;
  }
}

// Starts lib/counting_server.mjs, an SDK server with the MCP Python Interpreter's tool names
// that counts what reaches it, on a port of its own choosing on 127.0.0.1. Resolves once it
// listens, with { url, port, process, stop, calls() }; calls() resolves with its GET /calls
// answer: { requests, methods: { <method>: n }, tools: { <tool>: n } }.
// With `validate_host` it refuses requests whose Host or Origin is not a local name (403).
export async function start_counting_upstream({timeout_ms = 20_000, validate_host = false} = {}) {
  const entry = path.join(here, 'counting_server.mjs');
  const args = [entry, '0', ...(validate_host ? ['--validate-host'] : [])];
  const child = start_process('counting-server', process.execPath, args);
  try {
    const [, port] = await child.wait_for_line(peer_listening, {timeout_ms});
    const calls_url = `http://${loopback}:${port}/calls`;
    return {
      url: `http://${loopback}:${port}/mcp`,
      port: Number(port),
      process: child,
      stop: (options) => child.stop(options),
      calls: async () => {
        const response = await fetch(calls_url, {signal: AbortSignal.timeout(10_000)});
        if (!response.ok) throw new Error(`GET ${calls_url}: HTTP ${response.status}`);
        return response.json();
      },
    };
  } catch (error) {
    await child.stop({signal: 'SIGKILL'});
    throw error;
  }
}

const gateway_listening = /^mcpgate: listening on 127\.0\.0\.1:(\d+)$/;
const admin_listening_line = /^mcpgate: admin listening on (\S+:\d+)$/;

// Starts the gateway (MCPGATE_BIN) on a port of its choosing in front of `upstream_url` and
// resolves once it prints its listening line, with { url, port, process, stop,
// listening_line_count() }. `url` is the gateway's MCP endpoint: the upstream URL's path on the
// gateway's address. With `config` (a config file) the gateway reads it with --config, and
// `upstream_url` may be left out when the file names the upstream; `endpoint_path` then gives
// the path of `url` (default /mcp). The command-line --listen always wins over the file's.
//
// For stdio upstreams: `upstream_command` is passed as --upstream-command (one string, split by
// the gateway as a shell would); `admin` adds --admin 127.0.0.1:0 and the result then also
// holds `admin_url` (http://127.0.0.1:PORT); `extra_args` are appended to the command line as
// given; `env` and `cwd` are the gateway process's own.
export async function start_gateway({
  upstream_url,
  upstream_command,
  shards,
  config,
  admin = false,
  extra_args = [],
  env,
  cwd,
  endpoint_path = '/mcp',
  timeout_ms = 20_000,
} = {}) {
  if (!gateway_bin) throw new Error('MCPGATE_BIN is not set');
  const args = [];
  if (config !== undefined) args.push('--config', config);
  args.push('--listen', `${loopback}:0`);
  if (upstream_url !== undefined) args.push('--upstream', upstream_url);
  if (upstream_command !== undefined) args.push('--upstream-command', upstream_command);
  if (shards !== undefined) args.push('--shards', String(shards));
  if (admin) args.push('--admin', `${loopback}:0`);
  args.push(...extra_args);
  const child = start_process('mcpgate', gateway_bin, args, {env, cwd});
  let listening_lines = 0;
  child.watch_lines((stream_name, line) => {
    if (stream_name === 'stderr' && gateway_listening.test(line)) listening_lines += 1;
  });
  try {
    // Both waits start before either line can be printed: the admin line follows at once.
    const listening = child.wait_for_line(gateway_listening, {timeout_ms});
    const admin_listening =
        admin ? child.wait_for_line(admin_listening_line, {timeout_ms}) : Promise.resolve(null);
    listening.catch(() => {});
    admin_listening.catch(() => {});
    const [, port] = await listening;
    const admin_match = await admin_listening;
    return {
      url: `http://${loopback}:${port}${
          upstream_url !== undefined ? new URL(upstream_url).pathname : endpoint_path}`,
      port: Number(port),
      admin_url: admin_match ? `http://${admin_match[1]}` : undefined,
      process: child,
      stop: (options) => child.stop(options),
      listening_line_count: () => listening_lines,
    };
  } catch (error) {
    await child.stop({signal: 'SIGKILL'});
    throw error;
  }
}

// Stops every process in `peers` (objects with stop(), or null), gateway first so that it does
// not see its upstream vanish mid-request. For after() hooks: never throws.
export async function stop_all(...peers) {
  for (const peer of peers) {
    if (!peer) continue;
    try {
      await peer.stop();
    } catch {
      // The group is killed on exit anyway; a failing stop must not hide the test's own error.
    }
  }
}

// GET `admin_url`/metrics and returns the samples as a Map from the sample's name with its
// labels, as written ('mcpgate_stdio_refused_total{reason="crash_backoff"}'), to its value.
// `headers`: for an admin listener with a token, its Authorization header.
export async function read_metrics(admin_url, {headers} = {}) {
  const response =
      await fetch(`${admin_url}/metrics`, {headers, signal: AbortSignal.timeout(10_000)});
  if (!response.ok) throw new Error(`GET ${admin_url}/metrics: HTTP ${response.status}`);
  const samples = new Map();
  for (const line of (await response.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

// argv of the cheapest stdio MCP server there is: sed answering every line that holds a numeric
// "id" with an initialize result ({"name": "sed-echo"}), and nothing to notifications (-u: a
// line out for every line in, never held in a buffer). A shell runs `prelude` first, then
// execs sed in its place, so the gateway's child is sed itself; with the default prelude the
// child's first stderr line is "started", which the gateway logs with its pid.
export function sed_stdio_server({prelude = 'echo started >&2'} = {}) {
  const script = 's/.*"id":\\([0-9][0-9]*\\).*/{"jsonrpc":"2.0","id":\\1,"result":' +
      '{"protocolVersion":"2025-06-18","capabilities":{},' +
      '"serverInfo":{"name":"sed-echo","version":"1.0.0"}}}/p';
  return ['sh', '-c', `${prelude}; exec sed -un '${script}'`];
}
