// The MCP conformance suite, in server mode, against server-everything directly and through the
// gateway: a transparent gateway changes no scenario's outcome. Scenarios that fail directly
// (server-everything is not the suite's reference server) must fail the same way through the
// gateway.
import assert from 'node:assert/strict';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {after, describe, test} from 'node:test';

import {compare_runs, discard_results, format_table, list_scenarios, run_conformance} from './lib/conformance.mjs';
import {skip_without_gateway, start_counting_upstream, start_gateway, start_upstream, stop_all} from './lib/harness.mjs';

// server-everything does not check Host; the gateway does (DNS rebinding protection), so this
// scenario is compared against a server that validates Host instead, in its own test.
const host_checked = 'dns-rebinding-protection';

describe('MCP conformance suite through the gateway', {skip: skip_without_gateway}, () => {
  let direct_run = null;
  let gateway_run = null;
  let hiding_run = null;
  let peers = [];
  let dir = null;

  after(async () => {
    await stop_all(...peers);
    await discard_results(direct_run);
    await discard_results(gateway_run);
    await discard_results(hiding_run);
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  test('runs scenarios against server-everything directly', {timeout: 240_000}, async (t) => {
    const upstream = await start_upstream();
    peers.push(upstream);
    direct_run = await run_conformance({url: upstream.url});
    await upstream.stop();
    for (const line of list_scenarios(direct_run)) t.diagnostic(`direct ${line}`);

    assert.ok(
        direct_run.declared_count > 0, `the suite announced no scenarios\n${direct_run.output}`);
    const listed = `${direct_run.scenarios.size} of ${direct_run.declared_count} scenarios`;
    assert.equal(
        direct_run.scenarios.size, direct_run.declared_count,
        `the summary lists ${listed}\n${direct_run.output}`);
    const passing =
        [...direct_run.scenarios.values()].filter((scenario) => scenario.outcome === 'pass');
    assert.ok(
        passing.length > 0,
        `no scenario passed directly: the upstream is not serving MCP\n${direct_run.output}`);
  });

  test(
      'gives every scenario the same outcome through the gateway as directly', {timeout: 240_000},
      async (t) => {
        assert.ok(direct_run, 'the direct run did not complete; see the previous test');
        // A fresh upstream, so no session or subscription state from the direct run leaks in.
        const upstream = await start_upstream();
        peers.push(upstream);
        const gateway = await start_gateway({upstream_url: upstream.url});
        peers.unshift(gateway);
        gateway_run = await run_conformance({url: gateway.url});
        for (const line of list_scenarios(gateway_run)) t.diagnostic(`gateway ${line}`);

        const differences =
            compare_runs(direct_run, gateway_run).filter((row) => row.scenario !== host_checked);
        const headings = {scenario: 'scenario', expected: 'direct', actual: 'through gateway'};
        const report = `${differences.length} scenario(s) differ through ${gateway.url}:\n` +
            `${format_table(headings, differences)}\n\n${gateway.process.describe()}`;
        assert.equal(differences.length, 0, report);
        assert.equal(
            gateway_run.exit_code, direct_run.exit_code,
            'the suite exit status differs although every scenario matched');
      });

  // Several servers behind one gateway (issue #15): the route of one of them, /mcp/everything,
  // is that server alone, beside the federated endpoint and another server.
  test(
      'gives every scenario the same outcome through /mcp/<name> of a gateway with several servers',
      {timeout: 240_000}, async (t) => {
        assert.ok(direct_run, 'the direct run did not complete; see the first test');
        dir ??= await mkdtemp(path.join(os.tmpdir(), 'mcpgate-conformance-servers-'));
        const upstream = await start_upstream();
        const other = await start_counting_upstream();
        peers.push(upstream, other);
        const config = path.join(dir, 'servers.json');
        await writeFile(config, JSON.stringify({
          servers: {everything: {upstream: upstream.url}, counting: {upstream: other.url}},
        }));
        const gateway = await start_gateway({config, endpoint_path: '/mcp/everything'});
        peers.unshift(gateway);
        const run = await run_conformance({url: gateway.url});
        try {
          for (const line of list_scenarios(run)) t.diagnostic(`servers ${line}`);
          const differences =
              compare_runs(direct_run, run).filter((row) => row.scenario !== host_checked);
          const headings = {scenario: 'scenario', expected: 'direct', actual: 'through /mcp/everything'};
          assert.equal(differences.length, 0,
                       `${differences.length} scenario(s) differ through ${gateway.url}:\n` +
                           `${format_table(headings, differences)}\n\n${gateway.process.describe()}`);
        } finally {
          await discard_results(run);
        }
      });

  // Behind a policy that filters tools/list (every server-everything reply is an SSE stream that
  // opens with a priming event), only the scenario that lists tools may see a difference.
  test(
      'behind a policy hiding one tool, every scenario but tools-list scores as directly',
      {timeout: 240_000}, async (t) => {
        assert.ok(direct_run, 'the direct run did not complete; see the first test');
        dir = await mkdtemp(path.join(os.tmpdir(), 'mcpgate-conformance-hiding-'));
        const policy = path.join(dir, 'hiding.json');
        await writeFile(policy, JSON.stringify({hide: ['get-env']}));
        const upstream = await start_upstream();
        peers.push(upstream);
        const gateway =
            await start_gateway({upstream_url: upstream.url, extra_args: ['--policy', policy]});
        peers.unshift(gateway);
        hiding_run = await run_conformance({url: gateway.url});
        for (const line of list_scenarios(hiding_run)) t.diagnostic(`hiding ${line}`);

        const lists_tools = new Set(['tools-list', host_checked]);
        const differences =
            compare_runs(direct_run, hiding_run).filter((row) => !lists_tools.has(row.scenario));
        const headings = {scenario: 'scenario', expected: 'direct', actual: 'behind the policy'};
        assert.equal(
            differences.length, 0,
            `${differences.length} scenario(s) differ behind a hiding policy:\n` +
                `${format_table(headings, differences)}\n\n${gateway.process.describe()}`);
        assert.equal(hiding_run.scenarios.get('tools-list')?.outcome, 'pass',
                     list_scenarios(hiding_run).join('\n'));
      });

  test(
      'dns-rebinding-protection scores the same through the gateway as against a server that checks Host',
      {timeout: 240_000}, async () => {
        const upstream = await start_counting_upstream({validate_host: true});
        peers.push(upstream);
        const direct = await run_conformance({url: upstream.url});
        const gateway = await start_gateway({upstream_url: upstream.url});
        peers.unshift(gateway);
        const through = await run_conformance({url: gateway.url});
        try {
          const expected = direct.scenarios.get(host_checked);
          const actual = through.scenarios.get(host_checked);
          assert.equal(expected?.outcome, 'pass', list_scenarios(direct).join('\n'));
          assert.deepEqual(
              compare_runs(direct, through).filter((row) => row.scenario === host_checked), [],
              `${list_scenarios(through).join('\n')}\n\n${gateway.process.describe()}`);
          assert.equal(actual.passed, 2);
        } finally {
          await discard_results(direct);
          await discard_results(through);
        }
      });
});
