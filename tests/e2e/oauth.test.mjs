// The gateway as an OAuth 2.1 resource server (issue #18): an SDK client with an OAuth
// provider (client_credentials) learns from the 401 where the protected resource metadata is,
// finds the authorization server there, gets a token bound to the gateway's URL and calls
// tools; the token's group claim selects its grant. Tokens for another audience, expired ones,
// bad signatures, unknown keys, missing scopes and unmapped groups are refused with the
// status, WWW-Authenticate and audit line the specifications ask for. API keys keep working.
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {Client} from '@modelcontextprotocol/sdk/client/index.js';
import {ClientCredentialsProvider} from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {audit_lines, sha256_hex} from './lib/approvals.mjs';
import {start_auth_server} from './lib/auth_server.mjs';
import {gateway_bin, poll, skip_without_gateway, start_counting_upstream, start_gateway, stop_all} from './lib/harness.mjs';
import {request_options, text_of} from './lib/sdk_client.mjs';
import {fixture} from './lib/stdio.mjs';

describe('OAuth access tokens', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let audit = null;
  let as = null;
  const clients = [];
  const api_key = randomBytes(24).toString('base64url');

  async function oauth_client(id, secret) {
    const provider = new ClientCredentialsProvider({clientId: id, clientSecret: secret,
                                                    expectedIssuer: as.issuer});
    const client = new Client({name: 'mcpgate-e2e-oauth', version: '1.0.0'});
    const transport = new StreamableHTTPClientTransport(new URL(gateway.url), {authProvider: provider});
    await client.connect(transport, request_options);
    clients.push(client);
    return client;
  }

  // A raw initialize with `authorization`: the status, the WWW-Authenticate header, the body.
  async function initialize_with(authorization) {
    const headers = {'content-type': 'application/json',
                     'accept': 'application/json, text/event-stream'};
    if (authorization) headers.authorization = authorization;
    const reply = await fetch(gateway.url, {
      method: 'POST', headers,
      body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize',
                            params: {protocolVersion: '2025-11-25', capabilities: {},
                                     clientInfo: {name: 'raw', version: '1'}}}),
    });
    return {status: reply.status, www: reply.headers.get('www-authenticate'),
            body: await reply.text()};
  }

  before(async () => {
    as = await start_auth_server({clients: {
      'ops-bot': {secret: 'ops-secret', groups: ['mcp-ops']},
      'reader-bot': {secret: 'reader-secret', groups: ['staff', 'mcp-readers'], key: 'es'},
      'edd-bot': {secret: 'edd-secret', groups: ['mcp-ops'], key: 'ed'},
      'stranger-bot': {secret: 'stranger-secret', groups: ['nobody']},
      'unscoped-bot': {secret: 'unscoped-secret', groups: ['mcp-ops'], scope: 'profile'},
    }});
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-oauth-'));
    await mkdir(path.join(dir, 'workspace'));
    audit = path.join(dir, 'audit.log');
    await writeFile(path.join(dir, 'ops.json'), JSON.stringify({tools: {}}));
    await writeFile(path.join(dir, 'readers.json'), JSON.stringify({
      version: '1', default: 'deny', tools: {list_sessions: {}, list_python_environments: {}},
    }));
    const config = path.join(dir, 'mcpgate.json');
    await writeFile(config, JSON.stringify({
      upstream: {command: ['python3', fixture, '--dir', path.join(dir, 'workspace')]},
      oauth: {issuer: as.issuer, jwks: as.jwks_url, scopes_supported: ['mcp:tools'],
              required_scopes: ['mcp:tools'], jwks_min_refresh_s: 0},
      identities_from_claims: {name: 'sub', grant_from: {claim: 'groups',
                                                         map: {'mcp-ops': 'ops',
                                                               'mcp-readers': 'readers'}}},
      identities: [{name: 'ci-bot', key_sha256: sha256_hex(api_key), grant: 'readers'}],
      grants: {ops: {policy: 'ops.json'}, readers: {policy: 'readers.json'}},
      audit: {path: audit, flush_interval_ms: 10},
    }));
    gateway = await start_gateway({config});
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await stop_all(gateway);
    await as?.stop();
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('the 401 names the resource metadata, which names the authorization server',
       {timeout: 30_000}, async () => {
         const refused = await initialize_with(null);
         assert.equal(refused.status, 401);
         const origin = new URL(gateway.url).origin;
         const metadata_url = `${origin}/.well-known/oauth-protected-resource/mcp`;
         assert.equal(refused.www, `Bearer realm="mcpgate", resource_metadata="${metadata_url}"`);
         const metadata = await (await fetch(metadata_url)).json();
         assert.deepEqual(metadata, {resource: gateway.url, authorization_servers: [as.issuer],
                                     bearer_methods_supported: ['header'],
                                     scopes_supported: ['mcp:tools']});
         assert.deepEqual(await (await fetch(`${origin}/.well-known/oauth-protected-resource`)).json(),
                          metadata, 'the bare well-known path names the one endpoint');
         assert.equal((await fetch(`${origin}/.well-known/oauth-protected-resource/other`)).status,
                      404);
       });

  test('an SDK client gets a token and calls tools; its groups select its grant',
       {timeout: 60_000}, async () => {
         const ops = await oauth_client('ops-bot', 'ops-secret');
         const ran = await ops.callTool({name: 'run_python_code', arguments: {code: 'print(6*7)'}},
                                        undefined, request_options);
         assert.match(text_of(ran), /42/);
         assert.equal(as.issued[0].resource, gateway.url, 'the token was asked for this resource');

         // ES256 token, grant readers: its policy denies run_python_code.
         const reader = await oauth_client('reader-bot', 'reader-secret');
         const names = (await reader.listTools(undefined, request_options)).tools.map((t) => t.name);
         assert.deepEqual(names.sort(), ['list_python_environments', 'list_sessions']);
         const denied = await reader.callTool({name: 'run_python_code', arguments: {code: '1'}},
                                              undefined, request_options);
         assert.equal(denied.isError, true);
         assert.equal(denied.structuredContent.rule, 'default');

         // EdDSA works too.
         const edd = await oauth_client('edd-bot', 'edd-secret');
         assert.match(text_of(await edd.callTool({name: 'list_sessions', arguments: {}},
                                                 undefined, request_options)),
                      /No active sessions|Active/);

         const lines = await poll(async () => {
           const all = (await audit_lines(audit)).filter((l) => l.method === 'tools/call');
           return all.length >= 3 ? all : null;
         }, {what: 'the token callers\' audit lines'});
         const by = (who) => lines.find((l) => l.identity === who);
         assert.equal(by('ops-bot').grant, 'ops');
         assert.equal(by('ops-bot').issuer, as.issuer);
         assert.equal(by('ops-bot').decision, 'allowed');
         assert.equal(by('reader-bot').grant, 'readers');
         assert.equal(by('reader-bot').decision, 'denied');
         assert.equal(by('edd-bot').grant, 'ops');
       });

  test('API keys keep working beside tokens', {timeout: 30_000}, async () => {
    const ok = await initialize_with(`Bearer ${api_key}`);
    assert.equal(ok.status, 200);
    const line = await poll(async () => (await audit_lines(audit)).find(
                                (l) => l.identity === 'ci-bot'),
                            {what: 'the API key caller\'s line'});
    assert.equal(line.issuer, undefined, 'no issuer for an API key');
  });

  test('bad tokens are refused with the right status, header and audit line', {timeout: 30_000},
       async () => {
         const now = Math.floor(Date.now() / 1000);
         const good = {sub: 'mallory', aud: gateway.url, exp: now + 300, scope: 'mcp:tools',
                       groups: ['mcp-ops']};
         const [head, body, sig] = as.mint(good).split('.');
         const tampered = Buffer.from(JSON.stringify({...good, iss: as.issuer, groups: ['x']}))
                              .toString('base64url');
         const cases = [
           ['another audience', as.mint({...good, aud: 'http://elsewhere.example/mcp'}), 401,
            'token.audience', 'the token is for another audience'],
           ['expired', as.mint({...good, exp: now - 3600}), 401, 'token.expired',
            'the token has expired'],
           ['not yet valid', as.mint({...good, nbf: now + 3600}), 401, 'token.not_yet_valid',
            'the token is not valid yet'],
           ['a bad signature', `${head}.${tampered}.${sig}`, 401, 'token.signature',
            'the token\'s signature does not verify'],
           ['an unknown kid', as.mint(good, {key: 'stranger'}), 401, 'token.kid',
            'the token is signed with a key the authorization server does not publish'],
           ['another issuer', as.mint({...good, iss: 'http://evil.example'}), 401, 'token.issuer',
            'the token is from another issuer'],
           ['alg none', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${body}.`, 401,
            'token.algorithm', 'the token is signed with an algorithm this resource does not accept'],
           ['a repeated claim', `${head}.${Buffer.from(
                '{"sub":"m","aud":"x","aud":"' + gateway.url + '"}').toString('base64url')}.${sig}`,
            401, 'token.signature', null],
         ];
         for (const [what, token, status, rule, text] of cases) {
           const r = await initialize_with(`Bearer ${token}`);
           assert.equal(r.status, status, what);
           if (text) {
             assert.match(r.www, /^Bearer realm="mcpgate", resource_metadata="[^"]+", error="invalid_token"/,
                          what);
             assert.ok(r.www.includes(`error_description="${text}"`), `${what}: ${r.www}`);
             assert.match(JSON.parse(r.body).error.message, new RegExp(text.replace(/[()']/g, '.')));
           }
           const line = await poll(async () => (await audit_lines(audit)).find(
                                       (l) => l.rule === rule && l.decision === 'unauthenticated'),
                                   {what: `the audit line for ${what}`});
           assert.equal(line.identity, null, what);
         }
         // A token without the required scope: 403 insufficient_scope.
         const unscoped = await initialize_with(`Bearer ${as.mint({...good, scope: 'profile'})}`);
         assert.equal(unscoped.status, 403);
         assert.match(unscoped.www, /error="insufficient_scope", scope="mcp:tools"/);
         // Groups that map to no grant: 403.
         const lost = await initialize_with(`Bearer ${as.mint({...good, groups: ['nobody']})}`);
         assert.equal(lost.status, 403);
         assert.match(JSON.parse(lost.body).error.message, /name no grant/);
         for (const rule of ['token.scope', 'token.grant'])
           await poll(async () => (await audit_lines(audit)).find((l) => l.rule === rule),
                      {what: `the ${rule} audit line`});
         // A good one, for contrast.
         assert.equal((await initialize_with(`Bearer ${as.mint(good)}`)).status, 200);
       });

  test('a key rotated in at the issuer is fetched when a token first names it', {timeout: 30_000},
       async () => {
         as.rotate('fresh', 'rs-2');
         const now = Math.floor(Date.now() / 1000);
         const token = as.mint({sub: 'rotated', aud: gateway.url, exp: now + 300,
                                scope: 'mcp:tools', groups: ['mcp-ops']}, {key: 'fresh'});
         // The first sight of the kid is refused (the set in hand lacks it) and asks for a new
         // set; once it is in, the same token is taken.
         const fetched = gateway.process.wait_for_line(/re-read: 4 keys/);
         assert.equal((await initialize_with(`Bearer ${token}`)).status, 401);
         await fetched;
         assert.equal((await initialize_with(`Bearer ${token}`)).status, 200);
       });

  test('off loopback without allowed_hosts, a token\'s audience must be configured',
       {timeout: 30_000}, async () => {
         await writeFile(path.join(dir, 'jwks.json'), await (await fetch(as.jwks_url)).text());
         const config = path.join(dir, 'open.json');
         await writeFile(config, JSON.stringify({
           upstream: {command: ['python3', fixture]},
           oauth: {issuer: as.issuer, jwks: 'jwks.json'},
           identities_from_claims: {grant_from: {default: 'ops'}},
           grants: {ops: {policy: 'ops.json'}},
         }));
         const r = spawnSync(gateway_bin, ['--config', config, '--listen', '0.0.0.0:0'],
                             {timeout: 20_000});
         assert.equal(r.status, 1);
         assert.match(String(r.stderr), /open\.json: \$\.oauth: set "resource" \(or "audience"\), or "allowed_hosts"/);
       });
});

// The gateway presents its own credential to an upstream, from the environment, and never the
// client's token (token passthrough is forbidden by the MCP security guidance).
describe('upstream credentials', {skip: skip_without_gateway}, () => {
  let dir = null;
  let upstream = null;
  let gateway = null;
  let as = null;

  before(async () => {
    as = await start_auth_server({clients: {'ops-bot': {secret: 's', groups: ['mcp-ops']}}});
    upstream = await start_counting_upstream();
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-credential-'));
    await writeFile(path.join(dir, 'ops.json'), JSON.stringify({tools: {}}));
    const config = path.join(dir, 'mcpgate.json');
    await writeFile(config, JSON.stringify({
      upstream: {url: upstream.url,
                 credential: {header: 'Authorization', env: 'MCPGATE_E2E_UPSTREAM_TOKEN'}},
      oauth: {issuer: as.issuer, jwks: as.jwks_url},
      identities_from_claims: {grant_from: {default: 'ops'}},
      grants: {ops: {policy: 'ops.json'}},
    }));
    gateway = await start_gateway({
      config,
      env: {...process.env, MCPGATE_E2E_UPSTREAM_TOKEN: 'Bearer gateway-to-upstream'},
    });
  });

  after(async () => {
    await stop_all(gateway, upstream);
    await as?.stop();
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('the upstream sees the gateway\'s credential, never the client\'s token',
       {timeout: 30_000}, async () => {
         const provider = new ClientCredentialsProvider({clientId: 'ops-bot', clientSecret: 's',
                                                         expectedIssuer: as.issuer});
         const client = new Client({name: 'mcpgate-e2e-credential', version: '1.0.0'});
         await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url),
                                                                {authProvider: provider}),
                              request_options);
         await client.listTools(undefined, request_options);
         await client.close();
         const calls = await upstream.calls();
         assert.ok(calls.requests >= 2);
         assert.equal(calls.authorization, calls.requests, 'every request carried one');
         assert.deepEqual(calls.authorization_values, ['Bearer gateway-to-upstream']);
       });

  test('a credential from a variable that is not set stops the start, naming it',
       {timeout: 30_000}, async () => {
         const config = path.join(dir, 'unset.json');
         await writeFile(config, JSON.stringify({
           upstream: {url: upstream.url, credential: {header: 'X-Api-Key', env: 'MCPGATE_E2E_UNSET'}},
         }));
         const env = {...process.env};
         delete env.MCPGATE_E2E_UNSET;
         await assert.rejects(start_gateway({config, env, timeout_ms: 5_000}),
                              /\$.upstream.credential.env: the environment variable MCPGATE_E2E_UNSET is not set/);
       });
});

// A key set served over https: the certificate checked against the configured CA (the
// system's store otherwise); one the CA did not sign stops the start.
describe('an https key set', {skip: skip_without_gateway}, () => {
  let dir = null;
  let as = null;
  let jwks_server = null;
  let jwks_url = null;
  const gateways = [];

  function openssl_cert(name) {
    const key = path.join(dir, `${name}.key`), cert = path.join(dir, `${name}.pem`);
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
                                    'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
                                    '-subj', '/CN=127.0.0.1', '-addext',
                                    'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    assert.equal(r.status, 0, String(r.stderr));
    return {key, cert};
  }

  async function gateway_with(ca) {
    const config = path.join(dir, `gateway-${gateways.length}.json`);
    await writeFile(path.join(dir, 'ops.json'), JSON.stringify({tools: {}}));
    await writeFile(config, JSON.stringify({
      upstream: {command: ['python3', fixture, '--dir', path.join(dir, 'workspace')]},
      oauth: {issuer: as.issuer, jwks: jwks_url, jwks_ca: ca},
      identities_from_claims: {grant_from: {default: 'ops'}},
      grants: {ops: {policy: 'ops.json'}},
    }));
    const g = await start_gateway({config, timeout_ms: 10_000});
    gateways.push(g);
    return g;
  }

  before(async () => {
    as = await start_auth_server({clients: {}});
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-jwks-tls-'));
    await mkdir(path.join(dir, 'workspace'));
    const {key, cert} = openssl_cert('server');
    const published = await (await fetch(as.jwks_url)).text();
    jwks_server = https.createServer({key: await readFile(key), cert: await readFile(cert)},
                                     (req, res) => {
                                       res.writeHead(200, {'content-type': 'application/json'});
                                       res.end(published);
                                     });
    await new Promise((resolve) => jwks_server.listen(0, '127.0.0.1', resolve));
    jwks_url = `https://127.0.0.1:${jwks_server.address().port}/jwks`;
  });

  after(async () => {
    await stop_all(...gateways);
    await new Promise((resolve) => jwks_server?.close(resolve) ?? resolve());
    await as?.stop();
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('verified against the configured CA, its keys verify tokens', {timeout: 30_000},
       async () => {
         const gateway = await gateway_with(path.join(dir, 'server.pem'));
         const now = Math.floor(Date.now() / 1000);
         const token = as.mint({sub: 'tls-bot', aud: gateway.url, exp: now + 60});
         const reply = await fetch(gateway.url, {
           method: 'POST',
           headers: {'content-type': 'application/json',
                     'accept': 'application/json, text/event-stream',
                     'authorization': `Bearer ${token}`},
           body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize',
                                 params: {protocolVersion: '2025-11-25', capabilities: {},
                                          clientInfo: {name: 'raw', version: '1'}}}),
         });
         assert.equal(reply.status, 200, await reply.text());
       });

  test('a certificate the CA did not sign stops the start', {timeout: 30_000}, async () => {
    const other = openssl_cert('other');
    await assert.rejects(gateway_with(other.cert), /TLS handshake failed/);
  });
});
