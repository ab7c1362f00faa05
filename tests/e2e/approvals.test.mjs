// Human approval (issue #16): an approve_if rule holds clear_session of the Python interpreter
// stand-in until an operator decides on the admin listener; approved, the call runs and its
// real result comes back; denied or not decided in time, it never reaches the server. Also:
// a client that leaves cancels its approval, a standing approval lets the same call through
// for a while, a held call counts against a limit only once approved, and the command line.
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {rm} from 'node:fs/promises';
import {after, before, describe, test} from 'node:test';

import {ElicitRequestSchema} from '@modelcontextprotocol/sdk/types.js';

import {audit_lines, sha256_hex, start_approval_gateway} from './lib/approvals.mjs';
import {gateway_bin, poll, read_metrics, skip_without_gateway, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

function run_cli(args, env = {}) {
  return new Promise((resolve) => {
    execFile(gateway_bin, args, {timeout: 30_000, env: {...process.env, ...env}},
             (error, stdout, stderr) => {
               resolve({code: error ? (error.code ?? `signal ${error.signal}`) : 0, stdout, stderr});
             });
  });
}

describe('calls held for a human\'s approval', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let audit = null;
  let client = null;
  let auth = null;
  let token = null;

  async function admin(method, route, body) {
    const init = {method, headers: {...auth}, signal: AbortSignal.timeout(10_000)};
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const reply = await fetch(`${gateway.admin_url}${route}`, init);
    return {status: reply.status, body: await reply.json().catch(() => null)};
  }
  const pending = async () => (await admin('GET', '/approvals')).body;
  // The one pending call for `tool`, once it is held.
  const held = (tool) => poll(async () => (await pending()).find((c) => c.tool === tool),
                              {what: `a held ${tool} call`});
  const call = (name, args, options = request_options) =>
      client.callTool({name, arguments: args}, undefined, options);

  const metrics = () => read_metrics(gateway.admin_url, {headers: auth});

  before(async () => {
    let keys;
    ({gateway, dir, audit, keys, auth, admin_token: token} = await start_approval_gateway({
      prefix: 'approvals',
      policy: {
        version: '1',
        default: 'allow',
        tools: {
          clear_session: {
            approve_if: [{conditions: [], message: 'Clearing a session loses its state.',
                          timeout_ms: 3000, via: 'operator'}],
          },
          install_package: {
            approve_if: {conditions: [{path: 'args.package_name', op: 'eq', value: 'requests'}],
                         timeout_ms: 60_000},
            limits: [{counter: 'installs', window: 'minute', max: 1}],
          },
        },
      },
    }));
    ({client} = await connect_client(gateway.url, {key: keys.alice}));
    for (const session_id of ['s1', 's2', 's3'])
      await call('run_python_code', {code: 'x = 1', session_id});
  });

  after(async () => {
    await client?.close();
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('approved by an operator, denied by one, and not decided in time', {timeout: 60_000},
       async () => {
         // Approved: the client gets the server's own result.
         const first = call('clear_session', {session_id: 's1'});
         const record = await held('clear_session');
         assert.equal(record.identity, 'alice');
         assert.equal(record.server, 'default');
         assert.equal(record.rule, 'tools.clear_session.approve_if[0]');
         assert.equal(record.message, 'Clearing a session loses its state.');
         assert.deepEqual(record.arguments, {session_id: 's1'});
         assert.equal(record.arguments_sha256, sha256_hex('{"session_id":"s1"}'));
         assert.match(record.policy_revision, /^[0-9a-f]{12}$/);
         assert.ok(record.expires_at_ms - record.held_at_ms === 3000);
         // The operator's routes need the admin token.
         assert.equal((await fetch(`${gateway.admin_url}/approvals`)).status, 401);
         const approved = await admin('POST', `/approvals/${record.id}/approve`,
                                      {by: 'ops-oncall', reason: 'planned reset'});
         assert.deepEqual(approved, {status: 200, body: {id: record.id, state: 'approved'}});
         assert.equal(text_of(await first), "Session 's1' cleared.");
         assert.equal((await admin('POST', `/approvals/${record.id}/approve`, {by: 'x'})).status,
                      404, 'a decided call is no longer pending');

         // Denied: a policy denial that names the outcome, who decided and why.
         const second = call('clear_session', {session_id: 's2'});
         const other = await held('clear_session');
         assert.notEqual(other.id, record.id);
         assert.equal((await admin('POST', `/approvals/${other.id}/deny`, {by: 'ops-oncall',
                                                                           reason: 'not today'}))
                          .status,
                      200);
         const denied = await second;
         assert.equal(denied.isError, true);
         assert.equal(text_of(denied),
                      "[POLICY DENIED] tool 'clear_session' was not approved: denied by " +
                          'ops-oncall: not today');
         assert.equal(denied.structuredContent.decision, 'approval_denied');
         assert.equal(denied.structuredContent.rule, 'tools.clear_session.approve_if[0]');

         // No one decides: denied when the rule's timeout_ms passes.
         const third = await call('clear_session', {session_id: 's3'});
         assert.equal(third.isError, true);
         assert.equal(third.structuredContent.decision, 'approval_timeout');
         assert.equal(text_of(third),
                      "[POLICY DENIED] tool 'clear_session' was not approved within 3000 ms");
         assert.deepEqual(await pending(), []);

         // The server ran exactly the approved call: s1 is gone, s2 and s3 are still there.
         const sessions = text_of(await call('list_sessions', {}));
         assert.doesNotMatch(sessions, /Session: s1\b/);
         assert.match(sessions, /Session: s2\b/);
         assert.match(sessions, /Session: s3\b/);

         const lines = await poll(async () => {
           const clears = (await audit_lines(audit)).filter((l) => l.tool === 'clear_session');
           return clears.length >= 3 ? clears : null;
         }, {what: 'three clear_session audit lines'});
         assert.equal(lines[0].decision, 'allowed');
         assert.equal(lines[0].approval, record.id);
         assert.equal(lines[0].approved_by, 'ops-oncall');
         assert.equal(lines[0].approval_reason, 'planned reset');
         assert.equal(lines[0].upstream_status, 200);
         assert.deepEqual(lines[0].args, {session_id: 's1'});
         assert.equal(lines[1].decision, 'approval_denied');
         assert.equal(lines[1].denied_by, 'ops-oncall');
         assert.equal(lines[1].approval_reason, 'not today');
         assert.equal(lines[1].upstream_status, undefined, 'never forwarded');
         assert.equal(lines[2].decision, 'approval_timeout');
         assert.equal(lines[2].approval.startsWith('ap-'), true);
         for (const l of lines) assert.equal(l.rule, 'tools.clear_session.approve_if[0]');

         const m = await metrics();
         assert.equal(m.get('mcpgate_approvals_held_total'), 3);
         assert.equal(m.get('mcpgate_approvals_total{outcome="approved"}'), 1);
         assert.equal(m.get('mcpgate_approvals_total{outcome="denied"}'), 1);
         assert.equal(m.get('mcpgate_approvals_total{outcome="timed_out"}'), 1);
         assert.equal(m.get('mcpgate_approval_decision_seconds_count'), 2);
         assert.equal(m.get('mcpgate_approvals_pending'), 0);
       });

  test('a client that leaves cancels its pending approval', {timeout: 30_000}, async () => {
    const before_cancel = (await metrics()).get('mcpgate_approvals_total{outcome="cancelled"}');
    const abort = new AbortController();
    const gone = call('clear_session', {session_id: 's2'}, {...request_options, signal: abort.signal});
    gone.catch(() => {});
    const record = await held('clear_session');
    abort.abort();
    await poll(async () => (await pending()).length === 0, {what: 'the approval withdrawn'});
    const m = await metrics();
    assert.equal(m.get('mcpgate_approvals_total{outcome="cancelled"}'), before_cancel + 1);
    assert.equal((await admin('POST', `/approvals/${record.id}/approve`, {by: 'late'})).status,
                 404);
    const line = await poll(async () => (await audit_lines(audit)).find(
                                (l) => l.approval === record.id),
                            {what: 'the cancelled call in the audit log'});
    assert.equal(line.decision, 'cancelled');
  });

  test('a held call counts against its limit only once approved; a standing approval ' +
           'lets the same call through', {timeout: 60_000}, async () => {
    // Denied while held: no count taken.
    const first = call('install_package', {package_name: 'requests'});
    const a = await held('install_package');
    await admin('POST', `/approvals/${a.id}/deny`, {by: 'ops'});
    assert.equal((await first).structuredContent.decision, 'approval_denied');
    // Approved for an hour: it runs, and takes the one count of the minute.
    const second = call('install_package', {package_name: 'requests'});
    const b = await held('install_package');
    assert.equal((await admin('POST', `/approvals/${b.id}/approve`,
                              {by: 'ops', for_ms: 3_600_000})).status,
                 200);
    // The server's own answer (this stand-in never installs anything): the call ran.
    assert.match(text_of(await second), /Installing packages is disabled in this server/);
    // The same call again: not held (standing approval), but over the limit now.
    const third = await call('install_package', {package_name: 'requests'});
    assert.equal(third.structuredContent.decision, 'rate_limited');
    assert.deepEqual(await pending(), []);
    // Other arguments are not covered by it.
    const other = call('install_package', {package_name: 'requests', upgrade: true});
    const c = await held('install_package');
    assert.deepEqual(c.arguments, {package_name: 'requests', upgrade: true});
    await admin('POST', `/approvals/${c.id}/deny`, {by: 'ops'});
    await other;
    const m = await metrics();
    assert.equal(m.get('mcpgate_approvals_standing_used_total'), 1);
  });

  test('bad decisions are refused with the reason', {timeout: 30_000}, async () => {
    const pending_call = call('clear_session', {session_id: 's3'});
    const record = await held('clear_session');
    const route = `${gateway.admin_url}/approvals/${record.id}/approve`;
    const form = await fetch(route, {method: 'POST', headers: {...auth,
                                     'content-type': 'application/x-www-form-urlencoded'},
                                     body: 'by=x'});
    assert.equal(form.status, 415, 'a cross-site form cannot approve');
    const cross = await fetch(route, {method: 'POST', headers: {...auth,
                                      'content-type': 'application/json',
                                      origin: 'http://evil.example'},
                                      body: '{"by":"x"}'});
    assert.equal(cross.status, 403);
    for (const [body, message] of [
             [{}, /"by": say who decides/],
             [{by: 'x', extra: 1}, /unknown key "extra"/],
             [{by: 'x', for_ms: -1}, /for_ms: expected an integer/],
         ]) {
      const r = await admin('POST', `/approvals/${record.id}/approve`, body);
      assert.equal(r.status, 400);
      assert.match(r.body.error, message);
    }
    const dup = await fetch(route, {method: 'POST', headers: {...auth,
                                    'content-type': 'application/json'},
                                    body: '{"by":"x","by":"y"}'});
    assert.equal(dup.status, 400);
    assert.match((await dup.json()).error, /appears twice/);
    assert.equal((await admin('POST', '/approvals/ap-000/deny', {by: 'x'})).status, 404);
    // Still pending after all that; decided from the command line.
    const listed = await run_cli(['approvals', 'list', '--admin', gateway.admin_url],
                                 {MCPGATE_ADMIN_TOKEN: token});
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${record.id}\\s+clear_session\\s+alice`));
    const no_token = await run_cli(['approvals', 'list', '--admin', gateway.admin_url]);
    assert.equal(no_token.code, 1);
    assert.match(no_token.stderr, /401/);
    const decided = await run_cli(['approvals', 'deny', record.id, '--admin', gateway.admin_url,
                                   '--by', 'cli-operator', '--reason', 'from the shell'],
                                  {MCPGATE_ADMIN_TOKEN: token});
    assert.equal(decided.code, 0, decided.stderr);
    assert.match(decided.stdout, /denied/);
    assert.match(text_of(await pending_call), /denied by cli-operator: from the shell/);
    const again = await run_cli(['approvals', 'approve', record.id, '--admin', gateway.admin_url,
                                 '--by', 'cli-operator'],
                                {MCPGATE_ADMIN_TOKEN: token});
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no pending approval/);
  });

  test('a call with a progress token hears that it waits, then gets its result',
       {timeout: 30_000}, async () => {
         const seen = [];
         const waiting = call('clear_session', {session_id: 'p1'},
                              {...request_options, onprogress: (p) => seen.push(p)});
         const record = await held('clear_session');
         await poll(() => seen.length >= 2 || null, {what: 'two progress notifications'});
         assert.equal(seen[0].message, 'waiting for a human\'s approval');
         assert.equal(seen[0].total, 3, 'of the rule\'s 3000 ms');
         assert.ok(seen[1].progress > seen[0].progress, JSON.stringify(seen));
         await admin('POST', `/approvals/${record.id}/approve`, {by: 'ops'});
         // The server's own answer, as the last event of the stream the progress came in.
         assert.equal(text_of(await waiting), "Session 'p1' not found.");
         // Not decided: progress until the timeout, then the denial as the stream's last event.
         const heard = [];
         const late = await call('clear_session', {session_id: 'p2'},
                                 {...request_options, onprogress: (p) => heard.push(p)});
         assert.equal(late.structuredContent.decision, 'approval_timeout');
         assert.ok(heard.length >= 3, JSON.stringify(heard));
         assert.ok(heard.every((p, i) => i === 0 || p.progress > heard[i - 1].progress));
       });
});

// "via": "client": the human at the client is asked with elicitation/create in the call's own
// response stream, and the client's answer decides.
describe('approval asked of the human at the client', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let audit = null;
  let keys = null;
  let auth = null;
  const clients = [];

  // A client for `name` whose user answers every elicitation with `answer` (null: a client
  // that did not declare elicitation); the questions it was asked are in `asked`.
  async function client_of(name, answer) {
    const asked = [];
    const {client} = await connect_client(gateway.url, {
      key: keys[name],
      capabilities: answer ? {elicitation: {}} : {},
      install: (c) => {
        if (!answer) return;
        c.setRequestHandler(ElicitRequestSchema, async (request) => {
          asked.push(request.params);
          const pending = await (await fetch(`${gateway.admin_url}/approvals`, {headers: auth})).json();
          asked.push(pending);
          return answer;
        });
      },
    });
    clients.push(client);
    return {client, asked};
  }
  const clear = (client, session_id) => client.callTool(
      {name: 'clear_session', arguments: {session_id}}, undefined, request_options);

  before(async () => {
    ({gateway, dir, audit, keys, auth} = await start_approval_gateway({
      prefix: 'approvals-client',
      identities: ['alice', 'bob', 'carol'],
      policy: {tools: {clear_session: {approve_if: {conditions: [], via: 'client', timeout_ms: 30_000,
                                                    message: 'Clearing a session loses its state.'}}}},
    }));
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('a client whose user accepts gets the real result', {timeout: 60_000}, async () => {
    const {client, asked} = await client_of('alice', {action: 'accept', content: {approve: true}});
    await client.callTool({name: 'run_python_code', arguments: {code: 'x = 1', session_id: 's1'}});
    const result = await clear(client, 's1');
    assert.equal(text_of(result), "Session 's1' cleared.");
    assert.equal(asked.length, 2, 'asked once');
    assert.match(asked[0].message, /tool 'clear_session' of server 'default' for your approval/);
    assert.match(asked[0].message, /Clearing a session loses its state\. Arguments: \{"session_id":"s1"\}/);
    assert.deepEqual(asked[0].requestedSchema.required, ['approve']);
    assert.equal(asked[1][0].via, 'client', 'operators see it too, marked as asked of the client');
    const line = await poll(async () => (await audit_lines(audit)).find(
                                (l) => l.tool === 'clear_session' && l.identity === 'alice'),
                            {what: 'the approved call in the audit log'});
    assert.equal(line.decision, 'allowed');
    assert.equal(line.approved_by, 'client:alice');
    assert.equal(line.upstream_status, 200);
  });

  test('a client whose user declines gets the denial', {timeout: 60_000}, async () => {
    const {client, asked} = await client_of('bob', {action: 'decline'});
    await client.callTool({name: 'run_python_code', arguments: {code: 'x = 1', session_id: 's2'}});
    const result = await clear(client, 's2');
    assert.equal(asked.length, 2);
    assert.equal(result.isError, true);
    assert.equal(result.structuredContent.decision, 'approval_denied');
    assert.equal(text_of(result), "[POLICY DENIED] tool 'clear_session' was not approved: " +
                                      'denied by client:bob: the user chose decline');
    assert.match(text_of(await client.callTool({name: 'list_sessions', arguments: {}})),
                 /Session: s2\b/, 'the server never ran it');
    const line = await poll(async () => (await audit_lines(audit)).find(
                                (l) => l.tool === 'clear_session' && l.identity === 'bob'),
                            {what: 'the declined call in the audit log'});
    assert.equal(line.decision, 'approval_denied');
    assert.equal(line.denied_by, 'client:bob');
  });

  test('a client without elicitation is asked of an operator instead', {timeout: 60_000},
       async () => {
         const {client} = await client_of('carol', null);
         const call = clear(client, 's3');
         const record = await poll(async () => (await (await fetch(
                                       `${gateway.admin_url}/approvals`, {headers: auth})).json())
                                       .find((c) => c.identity === 'carol'),
                                   {what: 'carol\'s call held for an operator'});
         assert.equal(record.via, 'operator');
         // Another identity cannot answer carol's call as if it were its client.
         const reply = await fetch(gateway.url, {
           method: 'POST',
           headers: {'content-type': 'application/json',
                     'accept': 'application/json, text/event-stream',
                     'authorization': `Bearer ${keys.bob}`},
           body: JSON.stringify({jsonrpc: '2.0', id: `mcpgate-approval-${record.id}`,
                                 result: {action: 'accept', content: {approve: true}}}),
         });
         assert.equal(reply.status, 202, 'an answer to a question never asked goes nowhere');
         assert.equal((await (await fetch(`${gateway.admin_url}/approvals`, {headers: auth}))
                           .json()).length,
                      1, 'still pending');
         await fetch(`${gateway.admin_url}/approvals/${record.id}/approve`, {
           method: 'POST', headers: {...auth, 'content-type': 'application/json'},
           body: JSON.stringify({by: 'ops'}),
         });
         assert.equal(text_of(await call), "Session 's3' not found.");
       });
});
