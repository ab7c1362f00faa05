// Resource bounds (issue #12): a client with a valid key cannot make the gateway hold memory
// without bound. While its call is at the upstream it is read no further than one request's
// worth; a client of a stdio server that does not read its stream makes that server block
// instead of the gateway buffering what it writes; and session ids the gateway did not mint
// create no session counters.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {poll, skip_without_gateway, source_root, stop_all} from '../e2e/lib/harness.mjs';

import {start_raw_upstream} from './lib/faults_raw_upstream.mjs';
import {assert_session_not_found, protocol_version, rss_bytes, start_two_identities} from './lib/two_identities.mjs';

const mib = 1024 * 1024;
const flooding_server = path.join(source_root, 'tests', 'fixtures', 'flooding_stdio_server.py');

// A raw client that sends `head_and_body`, then nothing is read from it.
function silent_client(port, bytes) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({port, host: '127.0.0.1'}, () => {
      socket.write(bytes);
      resolve(socket);
    });
    socket.on('error', reject);
    socket.pause();  // never read: the kernel's receive buffer fills, then the gateway's queue
  });
}

function post_bytes(scene, message, session) {
  const body = JSON.stringify(message);
  return `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${scene.port}\r\n` +
      `Authorization: Bearer ${scene.keys.alice}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: ${protocol_version}\r\n` +
      (session ? `Mcp-Session-Id: ${session}\r\n` : '') +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('input while a call is at the upstream', {skip: skip_without_gateway}, () => {
  let upstream = null;
  let scene = null;

  before(async () => {
    upstream = await start_raw_upstream();
    upstream.behave(() => {});  // takes the request and never answers
    scene = await start_two_identities('bounds-input', {config: {upstream: upstream.url}});
  });
  after(async () => {
    await upstream?.close();  // first: it holds the exchange the gateway would drain
    await stop_all(scene);
  });

  test('100 MiB sent behind a pending call is not read, let alone held', {timeout: 30_000},
       async () => {
         const before_rss = await rss_bytes(scene.gateway.process.pid);
         const socket = await silent_client(scene.port, post_bytes(scene, {
           jsonrpc: '2.0', id: 1, method: 'tools/call', params: {name: 'read_file', arguments: {}}}));
         await poll(() => upstream.requests() === 1, {what: 'the call to reach the upstream'});
         const junk = Buffer.alloc(mib, 'x');
         let accepted = 0;
         let written = 0;
         for (let i = 0; i < 100; ++i) socket.write(junk, () => { accepted += mib; });
         written = 100 * mib;
         // The kernel takes what the gateway reads plus its socket buffers; the rest stays with the
         // client. Wait until the writes stop draining (or, unbounded, all of them have).
         let last = -1;
         await poll(() => {
           const settled = accepted === last || accepted === written;
           last = accepted;
           return settled;
         }, {what: 'the junk writes to settle', interval_ms: 500});
         const grown = (await rss_bytes(scene.gateway.process.pid)) - before_rss;
         socket.destroy();
         assert.ok(accepted < 40 * mib, `the gateway took ${accepted / mib} MiB of junk`);
         assert.ok(grown < 24 * mib, `the gateway grew by ${grown / mib} MiB`);
       });
});

describe('a stdio server\'s output to clients that do not read', {skip: skip_without_gateway}, () => {
  let scene = null;

  before(async () => {
    scene = await start_two_identities('bounds-stdio', {
      config: {upstream: {command: ['python3', flooding_server], max_processes: 32}},
    });
  });
  after(async () => { await stop_all(scene); });

  test('five clients not reading 64 MiB each: the servers block, the gateway holds a few MiB',
       {timeout: 60_000}, async () => {
         const sessions = [];
         for (let i = 0; i < 5; ++i) sessions.push(await scene.open_session(i % 2 ? 'bob' : 'alice'));
         const before_rss = await rss_bytes(scene.gateway.process.pid);
         const clients = [];
         for (const [i, session] of sessions.entries()) {
           const who = i % 2 ? 'bob' : 'alice';
           const bytes = post_bytes(scene, {jsonrpc: '2.0', id: i, method: 'tools/call',
                                            params: {name: 'flood', arguments: {count: 256, kib: 256}}},
                                    session)
                             .replace(scene.keys.alice, scene.keys[who]);
           clients.push(await silent_client(scene.port, bytes));
         }
         // The servers report each message written (on stderr, which the gateway logs). Wait
         // until every one has written all 256 (64 MiB), or none has written anything for a
         // second.
         const sent = new Map();
         let last_line_at = Date.now();
         const unwatch = scene.gateway.process.watch_lines((stream, line) => {
           const match = /pid (\d+): flood: sent (\d+)$/.exec(line);
           if (!match) return;
           sent.set(match[1], Number(match[2]));
           last_line_at = Date.now();
         });
         try {
           await poll(() => sent.size === 5 &&
                                ([...sent.values()].every((n) => n === 256) ||
                                 Date.now() - last_line_at > 1000),
                      {what: 'the flooding servers to finish or block', timeout_ms: 30_000});
         } finally {
           unwatch();
         }
         const grown = (await rss_bytes(scene.gateway.process.pid)) - before_rss;
         for (const client of clients) client.destroy();
         assert.ok(grown < 48 * mib, `five non-reading clients grew the gateway by ${grown / mib} MiB`);
         for (const [pid, n] of sent) {
           assert.ok(n < 64, `server ${pid} wrote ${n / 4} MiB that its client never read`);
         }
         // The servers unblock once their clients are gone: the gateway still serves.
         const fresh = await scene.open_session('alice');
         const reply = await scene.call('alice', 'small', 'flood', {count: 1, kib: 1}, {session: fresh});
         assert.match(reply.body, /flooded/);
       });
});

describe('session counters', {skip: skip_without_gateway}, () => {
  let upstream = null;
  let scene = null;

  before(async () => {
    upstream = await start_raw_upstream();
    scene = await start_two_identities('bounds-sessions', {
      config: {upstream: upstream.url},
      policy: {read_file: {limits: [{counter: 'big', window: 'day', max: 1000000, scope: 'session'}]}},
    });
  });
  after(async () => {
    await upstream?.close();  // first: it holds the exchange the gateway would drain
    await stop_all(scene);
  });

  test('twenty invented session ids mint no counter (1,000,000 slots each, before)',
       {timeout: 30_000}, async () => {
         const before_rss = await rss_bytes(scene.gateway.process.pid);
         for (let i = 0; i < 20; ++i) {
           const reply = await scene.call('alice', i, 'read_file', {}, {session: `made-up-${i}`});
           assert_session_not_found(reply, `invented id ${i}`);
         }
         const grown = (await rss_bytes(scene.gateway.process.pid)) - before_rss;
         assert.ok(grown < 16 * mib, `invented ids grew the gateway by ${grown / mib} MiB`);
         assert.equal(upstream.requests(), 0);
       });
});
