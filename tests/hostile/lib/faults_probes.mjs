// What the fault tests observe with: a raw HTTP client that keeps the exact bytes and how the
// connection ended, the audit file read line by line, the kernel's view of requests waiting in
// a stopped upstream's sockets, the admin listener's port, and a counting upstream started on a
// given port (to restart it where the gateway expects it).
import {readFile} from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

import {e2e_dir, poll, start_process} from '../../e2e/lib/harness.mjs';

const loopback = '127.0.0.1';
const peer_listening = /^e2e-peer: listening on 127\.0\.0\.1:(\d+)$/;

// Starts tests/e2e/lib/counting_server.mjs on `port` (0: the kernel picks), resolves once it
// listens with { url, port, process, stop, calls() } as the harness's start_counting_upstream
// does. Used to bring a killed upstream back on its port.
export async function start_counting_upstream_on(port, {timeout_ms = 20_000} = {}) {
  const entry = path.join(e2e_dir, 'lib', 'counting_server.mjs');
  const child = start_process('counting-server', process.execPath, [entry, String(port)]);
  try {
    const [, bound] = await child.wait_for_line(peer_listening, {timeout_ms});
    return {
      url: `http://${loopback}:${bound}/mcp`,
      port: Number(bound),
      process: child,
      stop: (options) => child.stop(options),
      calls: async () => {
        const calls_url = `http://${loopback}:${bound}/calls`;
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

// Signals the whole process group of a harness process (SIGSTOP/SIGCONT reach every thread).
export function signal_group(child, signal) { process.kill(-child.pid, signal); }

// The admin listener's port, from the gateway's `mcpgate: admin listening on` line (printed
// after the line start_gateway waits for, hence the poll).
export function admin_port(gateway) {
  return poll(() => {
    const match = /mcpgate: admin listening on 127\.0\.0\.1:(\d+)/.exec(gateway.process.describe());
    return match ? Number(match[1]) : null;
  }, {what: 'the admin listening line'});
}

// How many established TCP connections to local `port` hold unread bytes: requests sitting in
// the socket buffers of a stopped upstream (what the kernel shows in /proc/net/tcp).
export async function queued_requests_at(port) {
  const table = await readFile('/proc/net/tcp', 'utf8');
  let count = 0;
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const local_port = parseInt(fields[1].split(':')[1], 16);
    const state = fields[3];
    const rx_queue = parseInt(fields[4].split(':')[1], 16);
    if (local_port === port && state === '01' && rx_queue > 0) count += 1;
  }
  return count;
}

// The audit file's lines, parsed; a partial last line (being written) is left out.
export async function audit_lines(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line));
}

// Waits for the audit line of the message with JSON-RPC `id` and returns it.
export function audit_line_for(file, id, {timeout_ms = 10_000} = {}) {
  return poll(async () => (await audit_lines(file)).find((line) => line.id === id), {
    what: `the audit line of id ${JSON.stringify(id)} in ${file}`,
    timeout_ms,
  });
}

// One request over a fresh TCP connection, with the exact bytes of whatever comes back.
// Resolves with { status, headers (lower-case names), body (de-chunked), raw, complete, ended }:
// `complete` says a whole response arrived (its Content-Length, or the terminating chunk);
// `ended` is 'fin' when the gateway closed the connection cleanly, 'reset' for a reset, or
// 'open' when a complete response arrived and the connection stayed open (it is then closed).
// With wait_for_end, a complete response is not enough: it waits for the connection to end.
export function raw_exchange(port, request, {timeout_ms = 10_000, wait_for_end = false} = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, loopback);
    let raw = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => {
      const body = request.slice(request.indexOf('\r\n\r\n') + 4);
      finish(new Error(`no ${wait_for_end ? 'end of connection' : 'complete response'} within ${
          timeout_ms} ms to ${body}; got ${JSON.stringify(raw.toString('latin1'))}`));
    }, timeout_ms);
    function finish(error, ended) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) {
        reject(error);
        return;
      }
      resolve({...parse_response(raw), raw: raw.toString('latin1'), ended});
    }
    socket.on('data', (data) => {
      raw = Buffer.concat([raw, data]);
      if (!wait_for_end && parse_response(raw).complete) finish(null, 'open');
    });
    socket.on('end', () => finish(null, 'fin'));
    socket.on('error', (error) => {
      if (error.code === 'ECONNRESET') {
        finish(null, 'reset');
      } else {
        finish(error);
      }
    });
    socket.write(request);
  });
}

// Parses what arrived of one HTTP/1.1 response. Never throws: what is missing shows as
// status 0 or complete false.
export function parse_response(raw) {
  const text = raw.toString('latin1');
  const head_end = text.indexOf('\r\n\r\n');
  if (head_end < 0) return {status: 0, headers: {}, body: '', complete: false};
  const [status_line, ...header_lines] = text.slice(0, head_end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(status_line)?.[1] ?? 0);
  const headers = {};
  for (const line of header_lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = raw.subarray(Buffer.byteLength(text.slice(0, head_end + 4), 'latin1'));
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    return {
      status,
      headers,
      body: rest.subarray(0, length).toString('utf8'),
      complete: rest.length >= length,
    };
  }
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts = [];
    let at = 0;
    for (;;) {
      const line_end = rest.indexOf('\r\n', at);
      if (line_end < 0) break;
      const size = parseInt(rest.subarray(at, line_end).toString('latin1'), 16);
      if (Number.isNaN(size)) break;
      if (size === 0) {
        const done = rest.length >= line_end + 4;
        return {status, headers, body: Buffer.concat(parts).toString('utf8'), complete: done};
      }
      if (rest.length < line_end + 2 + size + 2) break;
      parts.push(rest.subarray(line_end + 2, line_end + 2 + size));
      at = line_end + 2 + size + 2;
    }
    return {status, headers, body: Buffer.concat(parts).toString('utf8'), complete: false};
  }
  return {status, headers, body: rest.toString('utf8'), complete: false};
}

// The bytes of a JSON-RPC POST to `path` on the gateway.
export function post_request(port, message, {path: endpoint = '/mcp', headers = {}} = {}) {
  const body = typeof message === 'string' ? message : JSON.stringify(message);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return `POST ${endpoint} HTTP/1.1\r\nHost: ${loopback}:${port}\r\n` +
      'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
      `${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

// The JSON-RPC messages of a response body: the body itself when JSON, else the `data:` of
// each SSE event.
export function jsonrpc_messages(body) {
  const trimmed = body.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return [JSON.parse(trimmed)];
  const messages = [];
  for (const block of body.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/)
                     .filter((line) => line.startsWith('data:'))
                     .map((line) => line.slice(5).trimStart())
                     .join('\n');
    if (data !== '') messages.push(JSON.parse(data));
  }
  return messages;
}
