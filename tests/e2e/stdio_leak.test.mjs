// Issue #5's leak check: over 10,000 MCP sessions opened (initialize) and closed (DELETE)
// through the gateway in front of a stdio upstream leave no child process, pipe or descriptor
// behind. The upstream is sed answering every request line with an initialize result (python or
// node would spend minutes just starting 10,000 times; see sed_stdio_server in lib/harness.mjs);
// a shell in front of it writes one line on stderr first, so that the gateway's log names every
// child's pid.
import assert from 'node:assert/strict';
import {readdirSync, readFileSync, readlinkSync} from 'node:fs';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, read_metrics, sed_stdio_server, skip_without_gateway, start_gateway, stop_all} from './lib/harness.mjs';

const sessions = 10_000;
const concurrency = 32;

const upstream_command = sed_stdio_server();

// { total, pipes, sockets, other } for the descriptors `pid` holds open.
function open_fds(pid) {
  const counts = {total: 0, pipes: 0, sockets: 0, other: 0};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;  // closed between the listing and the readlink
    }
    counts.total += 1;
    if (target.startsWith('pipe:'))
      counts.pipes += 1;
    else if (target.startsWith('socket:'))
      counts.sockets += 1;
    else
      counts.other += 1;
  }
  return counts;
}

// Every process on the machine as { pid, ppid, pgrp } (fields 4 and 5 of /proc/PID/stat, after
// the parenthesised command name, which may itself hold spaces or parentheses).
function all_processes() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;  // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({pid: Number(name), ppid: Number(fields[1]), pgrp: Number(fields[2])});
  }
  return out;
}

// One HTTP exchange on `agent`; resolves with { status, headers, body }.
function exchange_once(agent, url, {method, headers, body}) {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {method, headers, agent, timeout: 20_000}, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({
                           status: response.statusCode,
                           headers: response.headers,
                           body: Buffer.concat(chunks).toString('utf8'),
                         }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`${method} ${url}: timed out`)));
    request.on('error', (error) => {
      error.reused_connection = request.reusedSocket;
      error.message += ` (${method}, ${request.reusedSocket ? 'reused' : 'new'} connection)`;
      reject(error);
    });
    request.end(body);
  });
}

let retries = 0;

// exchange_once, again on a fresh connection when a kept-alive one turns out closed: the
// gateway closes connections idle past limits.idle_timeout_ms, and one a loaded machine left
// idle that long may close just as the next request goes out. The gateway closes only
// connections holding no unread request, so the request did not reach it and a retry is exact.
async function exchange(agent, url, options) {
  try {
    return await exchange_once(agent, url, options);
  } catch (error) {
    if (!error.reused_connection || !['ECONNRESET', 'EPIPE'].includes(error.code)) throw error;
    retries += 1;
    return exchange_once(agent, url, options);
  }
}

const initialize_body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: {name: 'mcpgate-e2e-stdio-leak', version: '1.0.0'},
  },
});

// initialize, then DELETE; throws unless both succeed.
async function open_and_close(agent, url) {
  const opened = await exchange(agent, url, {
    method: 'POST',
    headers: {'content-type': 'application/json', 'accept': 'application/json, text/event-stream'},
    body: initialize_body,
  });
  const session_id = opened.headers['mcp-session-id'];
  if (opened.status !== 200 || !session_id || !opened.body.includes('"sed-echo"'))
    throw new Error(`initialize: ${opened.status} ${session_id} ${opened.body}`);
  const closed = await exchange(agent, url, {
    method: 'DELETE',
    headers: {'mcp-session-id': session_id, 'mcp-protocol-version': '2025-06-18'},
  });
  if (closed.status !== 200) throw new Error(`DELETE: ${closed.status} ${closed.body}`);
}

// `count` sessions, `concurrency` at a time, each worker on its own keep-alive connection.
async function run_sessions(url, count) {
  const agent = new http.Agent({keepAlive: true, maxSockets: concurrency});
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      await open_and_close(agent, url);
    }
  };
  try {
    await Promise.all(Array.from({length: concurrency}, worker));
  } finally {
    agent.destroy();  // the gateway then sees the client connections close
  }
}

describe('stdio upstream: 10,000 sessions', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  const child_pids = new Set();

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-stdio-leak-'));
    const config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({
      upstream: {command: upstream_command, max_processes: 4 * concurrency, kill_grace_ms: 2_000},
      // Idle keep-alive connections, the client's and the pool's to the bridge, close after a
      // few seconds: descriptors then return to where they started.
      limits: {idle_timeout_ms: 3_000},
    }));
    gateway = await start_gateway({config, admin: true, shards: 2});
    gateway.process.watch_lines((stream_name, line) => {
      const match = /^mcpgate: stdio: session [0-9a-f]{8} pid (\d+): started$/.exec(line);
      if (stream_name === 'stderr' && match) child_pids.add(Number(match[1]));
    });
  });

  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('leaves no child process, pipe or descriptor behind', {timeout: 300_000}, async (t) => {
    const gateway_pid = gateway.process.pid;
    const fds_before = open_fds(gateway_pid);
    const started = performance.now();
    await run_sessions(gateway.url, sessions).catch((error) => {
      error.message += `\n${gateway.process.describe()}`;
      throw error;
    });
    const run_ms = performance.now() - started;

    // Every child logged its pid: the shell's line is the first thing each one does, and
    // the log may trail the DELETE answers by a little.
    await poll(() => child_pids.size === sessions, {
      what: `${sessions} children in the log (have ${child_pids.size})`,
      timeout_ms: 30_000,
    });

    // No child left running or unreaped, nor anything one of them started.
    let leftovers = [];
    await poll(() => {
      leftovers =
          all_processes().filter(({ppid, pgrp}) => ppid === gateway_pid || child_pids.has(pgrp));
      return leftovers.length === 0;
    }, {what: 'no process left from the children', timeout_ms: 30_000}).catch((error) => {
      throw new Error(`${error.message}: ${JSON.stringify(leftovers.slice(0, 20))}`);
    });

    let fds_after = null;
    await poll(() => {
      fds_after = open_fds(gateway_pid);
      return fds_after.total === fds_before.total && fds_after.pipes === fds_before.pipes;
    }, {
      what: 'the gateway\'s descriptors back at their starting level',
      timeout_ms: 30_000
    }).catch((error) => {
      throw new Error(`${error.message}: before ${JSON.stringify(fds_before)}, after ${
          JSON.stringify(fds_after)}`);
    });
    assert.deepEqual(fds_after, fds_before);

    const samples = await read_metrics(gateway.admin_url);
    assert.equal(samples.get('mcpgate_stdio_spawned_total'), sessions);
    assert.equal(samples.get('mcpgate_stdio_exits_total'), sessions);
    assert.equal(samples.get('mcpgate_stdio_processes'), 0);
    assert.equal(samples.get('mcpgate_stdio_sessions'), 0);
    assert.equal(samples.get('mcpgate_stdio_crashes_total'), 0);
    t.diagnostic(`${sessions} sessions, ${concurrency} at a time: ${
        (run_ms / 1000).toFixed(1)} s, ${(sessions / (run_ms / 1000)).toFixed(0)} sessions/s, ${
        retries} requests retried on a connection the gateway had closed as idle`);
  });
});
