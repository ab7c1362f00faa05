// A scripted HTTP/1.1 upstream for the fault tests: a node:net server on 127.0.0.1 that reads
// each request the gateway forwards (head and Content-Length body) and answers it with exact
// bytes, or misbehaves on purpose. The behaviour is set by the test and applies to every request
// until it is changed, so a request the gateway retries on a fresh connection meets the same
// fault.
//
//   const upstream = await start_raw_upstream();
//   upstream.behave(raw_behaviour.reset_mid_response);
//   ...
//   await upstream.close();
import net from 'node:net';

const loopback = '127.0.0.1';

// The JSON-RPC id of a forwarded body, as JSON text ("null" when there is none or the body is
// not JSON), so that answers carry the id the client sent.
function id_json_of(body) {
  try {
    const message = JSON.parse(body.toString('utf8'));
    return JSON.stringify(message?.id ?? null);
  } catch {
    return 'null';
  }
}

export function ok_body(id_json, text = 'ok') {
  return `{"jsonrpc":"2.0","id":${id_json},"result":{"content":[{"type":"text","text":"${
      text}"}]}}`;
}

function json_response(body) {
  return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${
      Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function chunk(text) { return `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`; }

// What the upstream does with one request. Each gets (socket, request) where request is
// { head: string, body: Buffer, id_json } and must answer, or close the socket, itself.
export const raw_behaviour = {
  // A well-formed JSON reply on a keep-alive connection.
  ok: (socket, {id_json}) => socket.write(json_response(ok_body(id_json))),

  // Reads the request, then resets the connection (RST) without a byte of response.
  reset_before_response: (socket) => socket.resetAndDestroy(),

  // Sends the head and part of a Content-Length body, then resets the connection.
  reset_mid_response: (socket, {id_json}) => {
    const body = ok_body(id_json, 'this reply never arrives whole');
    const head = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${
        Buffer.byteLength(body)}\r\n\r\n`;
    socket.write(head + body.slice(0, 20), () => socket.resetAndDestroy());
  },

  // Sends the head and part of a Content-Length body, then nothing more, the connection open.
  stall_mid_body: (socket, {id_json}) => {
    const body = ok_body(id_json, 'the rest of this reply never comes');
    socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${
        Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`);
  },

  // A status line that is not HTTP.
  malformed_status_line: (socket) => socket.write('HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}'),

  // A head with both Content-Length and Transfer-Encoding: the framing a smuggler would use.
  malformed_framing: (socket, {id_json}) => {
    const body = ok_body(id_json);
    socket.write(
        `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${
            Buffer.byteLength(body)}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        chunk(body) + '0\r\n\r\n');
  },

  // An SSE stream (chunked) that delivers one event and then ends the connection (FIN)
  // without the terminating chunk: the stream closed early.
  sse_closed_early: (socket, {id_json}) => {
    const event = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress",` +
        `"params":{"progressToken":${id_json},"progress":1}}\n\n`;
    socket.write(
        'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n' +
            '\r\n' + chunk(event),
        () => socket.end());
  },
};

// Starts the scripted upstream on a port the kernel picks. Resolves with
// { url, port, behave(fn), requests(), close() }; requests() is how many complete requests
// arrived since the start.
export function start_raw_upstream() {
  let behaviour = raw_behaviour.ok;
  let request_count = 0;
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});  // resets are what this server is for
    let pending = Buffer.alloc(0);
    socket.on('data', (data) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        const head_end = pending.indexOf('\r\n\r\n');
        if (head_end < 0) return;
        const head = pending.subarray(0, head_end).toString('latin1');
        const length_match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const length = length_match ? Number(length_match[1]) : 0;
        const total = head_end + 4 + length;
        if (pending.length < total) return;
        const body = pending.subarray(head_end + 4, total);
        pending = pending.subarray(total);
        request_count += 1;
        behaviour(socket, {head, body, id_json: id_json_of(body)});
        if (socket.destroyed) return;
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, loopback, () => {
      const {port} = server.address();
      resolve({
        url: `http://${loopback}:${port}/mcp`,
        port,
        behave: (fn) => {
          behaviour = fn;
        },
        requests: () => request_count,
        close: () => new Promise((done) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => done());
        }),
      });
    });
  });
}
