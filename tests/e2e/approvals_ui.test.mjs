// The approvals page (issue #16) in a real browser: headless Chromium (Debian's, driven by
// puppeteer-core) opens /ui/approvals on the admin listener, sees a held call appear without
// reloading, approves it with a click and denies another from the keyboard alone; the clients'
// calls complete accordingly. A screenshot of the page with a call waiting is written next to
// the gateway binary (under build/), for the README.
import assert from 'node:assert/strict';
import {existsSync} from 'node:fs';
import {rm} from 'node:fs/promises';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import puppeteer from 'puppeteer-core';

import {audit_lines, start_approval_gateway} from './lib/approvals.mjs';
import {gateway_bin, poll, skip_without_gateway, stop_all} from './lib/harness.mjs';
import {connect_client, request_options, text_of} from './lib/sdk_client.mjs';

// Debian's chromium, which tools/setup installs: a missing browser fails the test, it does not
// skip it.
const chromium = '/usr/bin/chromium';

describe('the approvals page', {skip: skip_without_gateway}, () => {
  let dir = null;
  let gateway = null;
  let audit = null;
  let browser = null;
  let page = null;
  const clients = [];
  let keys = null;
  let admin_token = null;

  async function client_of(name) {
    const {client} = await connect_client(gateway.url, {key: keys[name]});
    clients.push(client);
    return client;
  }
  const clear = (client, session_id) =>
      client.callTool({name: 'clear_session', arguments: {session_id}}, undefined,
                      {...request_options, timeout: 60_000});
  const status_text = () => page.$eval('#status', (e) => e.textContent);

  before(async () => {
    ({gateway, dir, audit, keys, admin_token} = await start_approval_gateway({
      prefix: 'approvals-ui',
      identities: ['alice', 'bob'],
      policy: {tools: {clear_session: {approve_if: {conditions: [],
                                                    message: 'Clearing a session loses its state.'}}}},
    }));
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      // Root in a container has no user namespace for Chromium's sandbox.
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage();
    await page.setViewport({width: 1200, height: 640});
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await browser?.close();
    await stop_all(gateway);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('a held call appears live and is approved with a click', {timeout: 90_000},
       async () => {
         const reply = await page.goto(`${gateway.admin_url}/ui/approvals`);
         assert.equal(reply.status(), 200, 'the page itself needs no token: it holds no data');
         assert.match(reply.headers()['content-security-policy'], /connect-src 'self'/);
         // Without the token the stream is refused, and the page says so.
         await page.waitForFunction(
             () => document.querySelector('#status').textContent.includes('needs its token'));
         // Every control has a label.
         for (const id of ['by', 'token'])
           assert.equal(await page.$eval(`label[for=${id}]`, (l) => l.textContent.length > 0), true);
         await page.type('#by', 'ops-oncall');
         await page.type('#token', admin_token);
         await page.click('#connect');
         await page.waitForFunction(
             () => document.querySelector('#status').textContent.startsWith('Connected'));

         const alice = await client_of('alice');
         await alice.callTool({name: 'run_python_code', arguments: {code: 'x = 1', session_id: 's1'}});
         const call = clear(alice, 's1');
         // The row arrives over the event stream: no reload.
         await page.waitForSelector('#rows tr[data-id]', {timeout: 20_000});
         const row = await page.$eval('#rows tr', (tr) => tr.textContent);
         assert.match(row, /clear_session/);
         assert.match(row, /alice/);
         assert.match(row, /"session_id": "s1"/);
         assert.match(row, /Clearing a session loses its state\./);
         assert.match(await status_text(), /New call waiting: clear_session for alice/);
         await page.waitForFunction(() => /left\)/.test(document.querySelector('.waiting').textContent));
         const screenshot = path.join(path.dirname(gateway_bin), 'approvals-ui.png');
         await page.screenshot({path: screenshot});
         assert.ok(existsSync(screenshot));

         // A reason, then a click on Approve.
         await page.type('#rows tr input[type=text]', 'planned reset');
         await page.click('#rows tr button.approve');
         assert.equal(text_of(await call), "Session 's1' cleared.");
         await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 0);
         assert.match(await status_text(), /Approved clear_session for alice/);
         const line = await poll(async () => (await audit_lines(audit)).find(
                                     (l) => l.tool === 'clear_session'),
                                 {what: 'the approved call in the audit log'});
         assert.equal(line.decision, 'allowed');
         assert.equal(line.approved_by, 'ops-oncall');
         assert.equal(line.approval_reason, 'planned reset');
       });

  test('two held calls, one denied from the keyboard, one decided elsewhere: the page follows',
       {timeout: 90_000}, async () => {
         const bob = await client_of('bob');
         const first = clear(bob, 'a');
         await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 1);
         const alice = await client_of('alice');
         const second = clear(alice, 'b');
         await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 2);
         const bob_row = await page.evaluateHandle(() => [...document.querySelectorAll('#rows tr')]
                                                       .find((tr) => tr.textContent.includes('bob')));
         // Keyboard only: from bob's reason field, Tab past the period and Approve to Deny, Enter.
         await (await bob_row.$('input[type=text]')).focus();
         for (let i = 0; i < 3; ++i) await page.keyboard.press('Tab');
         assert.equal(await page.evaluate(() => document.activeElement.className), 'deny');
         await page.keyboard.press('Enter');
         const denied = await first;
         assert.equal(denied.structuredContent.decision, 'approval_denied');
         assert.match(text_of(denied), /denied by ops-oncall/);
         await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 1);
         // Decided elsewhere (the command line, another operator): the page follows.
         const [pending] = await (await fetch(`${gateway.admin_url}/approvals`, {
                                   headers: {authorization: `Bearer ${admin_token}`}})).json();
         await fetch(`${gateway.admin_url}/approvals/${pending.id}/approve`, {
           method: 'POST',
           headers: {'authorization': `Bearer ${admin_token}`, 'content-type': 'application/json'},
           body: JSON.stringify({by: 'someone-else'}),
         });
         assert.equal(text_of(await second), "Session 'b' not found.");
         await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 0);
         assert.match(await status_text(), /was approved by someone-else/);
       });
});
