// An MCP server for the policy tests, built on the official TypeScript SDK (McpServer behind a
// stateful StreamableHTTPServerTransport per session), offering the tools of the MCP Python
// Interpreter (read_file, list_directory, write_file, clear_session, run_python_code) with
// bodies that touch nothing. Its purpose is to witness what the gateway let through: it counts
// every HTTP request and every JSON-RPC message it receives, before the SDK sees them, so a
// call that the SDK would reject still counts as having reached the upstream.
//
//   node counting_server.mjs [PORT] [--validate-host]
//
// PORT defaults to 0 (the kernel picks one). With --validate-host it protects itself against DNS
// rebinding as the MCP security guidance asks: a request whose Host (or Origin) is not
// localhost, 127.0.0.1 or [::1] gets 403 (the conformance suite's reference behaviour).
//
// Listens on 127.0.0.1 only and prints `e2e-peer: listening on 127.0.0.1:<port>` on stderr once
// it accepts, the line the harness waits for (the same contract as loopback_listen.mjs).
//
//   POST|GET|DELETE /mcp   the MCP endpoint
//   GET /calls             the counts so far, as JSON:
//                          { "requests": <HTTP requests on /mcp>,
//                            "authorization": <those carrying an Authorization header>,
//                            "authorization_values": [<the distinct values, at most 16>],
//                            "methods": { "<JSON-RPC method>": n, ... },
//                            "tools": { "<tools/call params.name>": n, ... } }
import {McpServer} from '@modelcontextprotocol/sdk/server/mcp.js';
import {StreamableHTTPServerTransport} from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {isInitializeRequest} from '@modelcontextprotocol/sdk/types.js';
import {randomUUID} from 'node:crypto';
import http from 'node:http';
import * as z from 'zod/v4';

const loopback = '127.0.0.1';
const endpoint = '/mcp';
// Far above anything the tests send; a body past it is refused rather than buffered forever.
const max_body_bytes = 1 << 20;

const counts = {
  requests: 0,
  authorization: 0,  // requests that arrived carrying an Authorization header
  authorization_values: [],
  methods: {},
  tools: {}
};

function bump(table, key) { table[key] = (table[key] ?? 0) + 1; }

// Counts the JSON-RPC messages of one POST body (a message or a batch). Anything that is not a
// request or notification object (responses, garbage) is not a method call and is not counted.
function count_messages(body) {
  for (const message of Array.isArray(body) ? body : [body]) {
    if (message === null || typeof message !== 'object' || typeof message.method !== 'string') {
      continue;
    }
    bump(counts.methods, message.method);
    if (message.method === 'tools/call') bump(counts.tools, String(message.params?.name));
  }
}

function text_result(text) { return {content: [{type: 'text', text}]}; }

// One McpServer per session: the SDK binds a server to one transport.
function new_mcp_server() {
  const server = new McpServer({name: 'e2e-counting-server', version: '1.0.0'});
  server.registerTool(
      'read_file', {description: 'Reads a file', inputSchema: {path: z.string()}},
      async ({path}) => text_result(`contents of ${path}`));
  server.registerTool(
      'list_directory', {description: 'Lists a directory', inputSchema: {path: z.string()}},
      async ({path}) => text_result(`${path}: a.txt b.txt`));
  server.registerTool(
      'write_file',
      {description: 'Writes a file', inputSchema: {path: z.string(), content: z.string()}},
      async ({path, content}) => text_result(`wrote ${content.length} bytes to ${path}`));
  server.registerTool(
      'clear_session', {description: 'Clears the interpreter session'},
      async () => text_result('session cleared'));
  server.registerTool(
      'run_python_code', {description: 'Runs Python code', inputSchema: {code: z.string()}},
      async ({code}) => text_result(`ran ${code.length} characters`));
  return server;
}

const sessions = new Map();  // Mcp-Session-Id -> transport

function send_json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(
      status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)});
  res.end(body);
}

function send_jsonrpc_error(res, status, code, message) {
  send_json(res, status, {jsonrpc: '2.0', error: {code, message}, id: null});
}

// Resolves with the request body parsed as JSON, or undefined when it is not JSON (the SDK then
// answers the parse error itself).
function read_json_body(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > max_body_bytes) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(undefined);
      }
    });
    req.on('error', reject);
  });
}

async function handle_mcp(req, res) {
  counts.requests += 1;
  if (req.headers.authorization !== undefined) {
    counts.authorization += 1;
    const seen = counts.authorization_values;
    if (!seen.includes(req.headers.authorization) && seen.length < 16)
      seen.push(req.headers.authorization);
  }
  const session_id = req.headers['mcp-session-id'];
  let body;
  if (req.method === 'POST') {
    body = await read_json_body(req);
    if (body !== undefined) count_messages(body);
  }
  let transport = session_id ? sessions.get(session_id) : undefined;
  if (!transport) {
    if (session_id) {
      send_jsonrpc_error(res, 404, -32001, 'Session not found');
      return;
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      send_jsonrpc_error(res, 400, -32000, 'Bad Request: no valid session ID provided');
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      // Stored from this callback, not after handleRequest, so that a request racing the
      // initialize response still finds its session.
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await new_mcp_server().connect(transport);
  }
  await transport.handleRequest(req, res, body);
}

const validate_host = process.argv.includes('--validate-host');
const local_hosts = new Set(['localhost', '127.0.0.1', '[::1]']);

function is_local_authority(authority) {
  try {
    return local_hosts.has(new URL(`http://${authority}`).hostname);
  } catch {
    return false;
  }
}

function rebinding_attempt(req) {
  if (!validate_host) return false;
  if (!is_local_authority(req.headers.host ?? '')) return true;
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return !local_hosts.has(new URL(origin).hostname);
  } catch {
    return true;
  }
}

const server = http.createServer((req, res) => {
  const {pathname} = new URL(req.url, `http://${loopback}`);
  if (rebinding_attempt(req)) {
    send_jsonrpc_error(res, 403, -32000, 'Forbidden: Host or Origin not allowed');
    return;
  }
  if (pathname === '/calls' && req.method === 'GET') {
    send_json(res, 200, counts);
    return;
  }
  if (pathname !== endpoint) {
    send_jsonrpc_error(res, 404, -32601, `no endpoint at ${pathname}`);
    return;
  }
  handle_mcp(req, res).catch((error) => {
    process.stderr.write(`e2e-peer: ${req.method} ${pathname} failed: ${error.stack ?? error}\n`);
    if (!res.headersSent)
      send_jsonrpc_error(res, 500, -32603, 'Internal server error');
    else
      res.destroy();
  });
});

const port_arg = process.argv.slice(2).find((arg) => /^\d+$/.test(arg));
const port = Number(port_arg ?? process.env.PORT ?? 0);
server.listen(port, loopback, () => {
  const address = server.address();
  process.stderr.write(`e2e-peer: listening on ${address.address}:${address.port}\n`);
});

// The harness stops peers with SIGTERM; exit at once, open SSE streams or not.
process.once('SIGTERM', () => process.exit(0));
