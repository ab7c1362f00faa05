// The raw HTTP/1.1 client of the bypass tests: a TCP connection that sends exactly the bytes a
// case gives it (all at once, in pieces, one byte at a time) and reads back every response on
// the connection, in order, and how the connection ended. Nothing here normalises what is sent:
// smuggling cases depend on the gateway seeing the very bytes written.
import net from 'node:net';

const loopback = '127.0.0.1';

// Splits what arrived on a connection into HTTP/1.1 responses. Returns { response, rest } for
// the first complete response (response null when it is not complete yet); response is
// { status, headers (lower-case names; a repeated name keeps every value, joined by ", "),
// body (de-chunked, utf8), head (the raw head text) }. A response without Content-Length or
// chunked framing is complete only when the connection has ended (`ended`).
export function split_response(raw, ended = false, {head_request = false} = {}) {
  const head_end = raw.indexOf('\r\n\r\n');
  if (head_end < 0) return {response: null, rest: raw};
  const head = raw.subarray(0, head_end).toString('latin1');
  const [status_line, ...header_lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(status_line)?.[1] ?? 0);
  const headers = {};
  for (const line of header_lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const body_start = head_end + 4;
  const done = (body, end) =>
      ({response: {status, headers, body: body.toString('utf8'), head}, rest: raw.subarray(end)});
  // 1xx, 204, 304 and any answer to HEAD carry no body.
  if ((status >= 100 && status < 200) || status === 204 || status === 304 || head_request) {
    return done(Buffer.alloc(0), body_start);
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (raw.length < body_start + length) return {response: null, rest: raw};
    return done(raw.subarray(body_start, body_start + length), body_start + length);
  }
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts = [];
    let at = body_start;
    for (;;) {
      const line_end = raw.indexOf('\r\n', at);
      if (line_end < 0) return {response: null, rest: raw};
      const size = parseInt(raw.subarray(at, line_end).toString('latin1'), 16);
      if (Number.isNaN(size)) return {response: null, rest: raw};
      if (size === 0) {
        // The last chunk, then trailers (none expected) and an empty line.
        const trailer_end = raw.indexOf('\r\n\r\n', line_end);
        if (trailer_end < 0 && raw.length < line_end + 4) return {response: null, rest: raw};
        const end = trailer_end < 0 ? line_end + 4 : trailer_end + 4;
        return done(Buffer.concat(parts), end);
      }
      if (raw.length < line_end + 2 + size + 2) return {response: null, rest: raw};
      parts.push(raw.subarray(line_end + 2, line_end + 2 + size));
      at = line_end + 2 + size + 2;
    }
  }
  if (!ended) return {response: null, rest: raw};
  return done(raw.subarray(body_start), raw.length);
}

// One client connection to `port` on loopback with Nagle off, so that each write leaves as its
// own segment as far as the sender can tell.
export class raw_connection {
  static open(port) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({port, host: loopback, noDelay: true});
      socket.once('connect', () => resolve(new raw_connection(socket)));
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket_ = socket;
    this.received_ = Buffer.alloc(0);
    this.all_received_ = Buffer.alloc(0);
    this.ended_ = null;  // 'fin' (the peer closed), 'reset', or null while open
    this.waiters_ = new Set();
    socket.on('data', (data) => {
      this.received_ = Buffer.concat([this.received_, data]);
      this.all_received_ = Buffer.concat([this.all_received_, data]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended_ ??= 'fin';
      this.wake();
    });
    socket.on('error', (error) => {
      this.ended_ ??= error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'reset' : 'error';
      this.wake();
    });
    socket.on('close', () => {
      this.ended_ ??= 'fin';
      this.wake();
    });
  }

  wake() {
    for (const waiter of [...this.waiters_]) waiter();
  }

  // Everything received so far on this connection, for failure messages.
  get transcript() { return this.all_received_.toString('latin1'); }
  // 'fin', 'reset' or 'error' once the connection has ended; null while it is open.
  get ended() { return this.ended_; }

  // Resolves when `check()` returns something other than undefined, re-checking on every event
  // of the connection; rejects after `timeout_ms` naming `what`.
  wait(check, what, timeout_ms) {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        let value;
        try {
          value = check();
        } catch (error) {
          finish();
          reject(error);
          return;
        }
        if (value === undefined) return;
        finish();
        resolve(value);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeout_ms} ms waiting for ${what}; received ${
            JSON.stringify(this.transcript)} (connection ${this.ended_ ?? 'open'})`));
      }, timeout_ms);
      const finish = () => {
        clearTimeout(timer);
        this.waiters_.delete(attempt);
      };
      this.waiters_.add(attempt);
      attempt();
    });
  }

  // Writes `bytes` (string as latin1 when `binary`, else utf8; or a Buffer); resolves once the
  // kernel took them. Writing to a connection the gateway closed is not an error here: the case
  // then asserts on what came back.
  write(bytes) {
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    return new Promise((resolve) => {
      if (this.socket_.destroyed || this.socket_.writableEnded) {
        resolve(false);
        return;
      }
      this.socket_.write(data, (error) => resolve(!error));
    });
  }

  // Writes `pieces` one after the other, each after the previous one has left and the event
  // loop has turned, so that the gateway can see them in separate reads.
  async write_pieces(pieces) {
    for (const piece of pieces) {
      if (!(await this.write(piece))) return false;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return true;
  }

  // Writes `bytes` one byte at a time.
  write_bytewise(bytes) {
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    const pieces = [];
    for (let i = 0; i < data.length; ++i) pieces.push(data.subarray(i, i + 1));
    return this.write_pieces(pieces);
  }

  // Resolves with the next complete response on the connection (consuming it).
  next_response({timeout_ms = 10_000, head_request = false} = {}) {
    return this.wait(() => {
      const {response, rest} =
          split_response(this.received_, this.ended_ !== null, {head_request});
      if (response) {
        this.received_ = rest;
        return response;
      }
      if (this.ended_ !== null) {
        throw new Error(`the connection ended (${this.ended_}) before a complete response; got ${
            JSON.stringify(this.transcript)}`);
      }
      return undefined;
    }, 'a complete response', timeout_ms);
  }

  // Resolves with how the connection ended ('fin', 'reset', 'error') once the gateway closed it.
  closed({timeout_ms = 10_000} = {}) {
    return this.wait(
        () => this.ended_ ?? undefined, 'the gateway to close the connection', timeout_ms);
  }

  // Resolves with the bytes received after the responses consumed so far, once the connection
  // has ended.
  async rest_after_close(options) {
    await this.closed(options);
    return this.received_.toString('latin1');
  }

  destroy() { this.socket_.destroy(); }
}

// Opens a connection, sends `bytes`, and resolves with { response, connection }.
export async function exchange(port, bytes, {timeout_ms, head_request = false} = {}) {
  const connection = await raw_connection.open(port);
  await connection.write(bytes);
  try {
    return {response: await connection.next_response({timeout_ms, head_request}), connection};
  } catch (error) {
    connection.destroy();
    throw error;
  }
}

// The JSON-RPC messages of a response body: the body itself when JSON, else the `data:` of
// each SSE event.
export function jsonrpc_messages(body) {
  const trimmed = body.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const value = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  }
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
