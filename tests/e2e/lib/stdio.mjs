// Helpers for the stdio end-to-end suites (stdio.test.mjs, stdio_children.test.mjs): the
// fixtures they start, raw requests, and children found by the gateway's log of their stderr.

import assert from 'node:assert/strict';
import {existsSync} from 'node:fs';
import path from 'node:path';

import {poll, read_metrics, source_root} from './harness.mjs';
import {request_options} from './sdk_client.mjs';

export const node = process.execPath;
export const fixture = path.join(source_root, 'tests', 'fixtures', 'python_interpreter_server.py');
export const example_dir = path.join(source_root, 'examples', 'python-interpreter');
export const example_config = path.join(example_dir, 'mcpgate.json');
export const approval_text = '[POLICY DENIED] Blocked by default. Requires approval.';
export const interpreter_tools = [
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
export const stdio_exited_code = -32036;

// One word for --upstream-command, whatever it holds.
export function quote(word) { return `'${word.replaceAll('\'', '\'\\\'\'')}'`; }

export function command_line(...words) { return words.map(quote).join(' '); }

export function call(client, name, args = {}) {
  return client.callTool({name, arguments: args}, undefined, request_options);
}

// Keeps every stderr line of `gateway` from now on (the harness keeps only a tail), so that a
// child's pid can be found by its session id however much was logged since.
export function collect_log(gateway) {
  const lines = [];
  gateway.process.watch_lines((stream_name, line) => {
    if (stream_name === 'stderr') lines.push(line);
  });
  return lines;
}

const child_line = /^mcpgate: stdio: session ([0-9a-f]{8}) pid (\d+): /;

// The pid of the child serving `session_id`, from the first line it wrote on its stderr.
export function child_pid(log, session_id) {
  return poll(() => {
    for (const line of log) {
      const match = child_line.exec(line);
      if (match && match[1] === session_id.slice(0, 8)) return Number(match[2]);
    }
    return null;
  }, {what: `a stderr line from the child of session ${session_id}`, timeout_ms: 15_000});
}

// True while `pid` exists, zombie included: a child the gateway has not reaped still counts.
export function process_exists(pid) { return existsSync(`/proc/${pid}`); }

export async function metric(gateway, name) {
  const samples = await read_metrics(gateway.admin_url);
  assert.ok(samples.has(name), `no ${name} on /metrics`);
  return samples.get(name);
}

export const accept = 'application/json, text/event-stream';

// POSTs an initialize without the SDK, so that error statuses come back as they are; resolves
// with { status, session_id, body } (body parsed when it is JSON).
export async function raw_initialize(url, {key} = {}) {
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
