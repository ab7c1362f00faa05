// The MCP Inspector's CLI mode (`npx @modelcontextprotocol/inspector --cli`) through the
// gateway with a bearer header, as an operator tries a deployment by hand: it lists tools, calls
// one, is refused a denied one and, without the key, is refused (the 401 sends it looking for
// OAuth, which the gateway does not offer yet).
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {e2e_dir, skip_without_gateway, source_root, start_gateway, stop_all} from './lib/harness.mjs';

const fixture = path.join(source_root, 'tests', 'fixtures', 'changing_tool_server.py');
const inspector = path.join(e2e_dir, 'node_modules', '.bin', 'mcp-inspector');

describe('the MCP Inspector CLI through the gateway', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  const key = 'inspector-key';

  // Runs the inspector's CLI against the gateway; HOME is the test's own, since the inspector
  // keeps state under ~/.mcp-inspector.
  function inspect(args, {with_key = true} = {}) {
    const headers = with_key ? ['--header', `Authorization: Bearer ${key}`] : [];
    return new Promise((resolve) => {
      execFile(process.execPath, [inspector, '--cli', gateway.url, ...headers, ...args],
               {timeout: 60_000, env: {...process.env, HOME: dir}},
               (error, stdout, stderr) => resolve({code: error ? (error.code ?? 1) : 0, stdout, stderr}));
    });
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-e2e-inspector-'));
    await writeFile(path.join(dir, 'description.txt'), 'Fetch a page.');
    await writeFile(path.join(dir, 'policy.json'), JSON.stringify({
      fetch_page: {deny_if: [{conditions: [{path: 'args.url', op: 'starts_with', value: 'https://a.'}],
                              on_deny: 'No fetching from a.example.'}]},
    }));
    const config = path.join(dir, 'gateway.json');
    await writeFile(config, JSON.stringify({
      upstream: {command: ['python3', fixture, path.join(dir, 'description.txt')]},
      identities: [{name: 'operator', key_sha256: createHash('sha256').update(key).digest('hex'),
                    grant: 'ops'}],
      grants: {ops: {policy: 'policy.json'}},
    }));
    gateway = await start_gateway({config});
  });
  after(async () => {
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('lists tools and calls one with the bearer key; a denied tool gets the denial',
       {timeout: 120_000}, async () => {
         const listed = await inspect(['--method', 'tools/list']);
         assert.equal(listed.code, 0, listed.stderr);
         assert.deepEqual(JSON.parse(listed.stdout).tools.map((t) => t.name).sort(),
                          ['fetch_page', 'word_count']);
         const called = await inspect(['--method', 'tools/call', '--tool-name', 'word_count',
                                       '--tool-arg', 'text=one two three']);
         assert.equal(called.code, 0, called.stderr);
         assert.equal(JSON.parse(called.stdout).content[0].text, '3');
         const denied = await inspect(['--method', 'tools/call', '--tool-name', 'fetch_page',
                                       '--tool-arg', 'url=https://a.example']);
         const result = JSON.parse(denied.stdout);
         assert.equal(result.isError, true);
         assert.equal(result.content[0].text, '[POLICY DENIED] No fetching from a.example.');
       });

  test('without the key the inspector reports the 401', {timeout: 60_000}, async () => {
    // --stored-auth-only: the 401 makes the inspector look for OAuth, which needs a TTY.
    const refused = await inspect(['--method', 'tools/list', '--stored-auth-only'], {with_key: false});
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /auth_required|401|Unauthorized/);
  });
});
