// The MCP conformance suite, in server mode, against server-everything directly and through the
// gateway: a transparent gateway changes no scenario's outcome. Scenarios that fail directly
// (server-everything is not the suite's reference server) must fail the same way through the
// gateway.
import assert from 'node:assert/strict';
import {after, describe, test} from 'node:test';

import {compare_runs, discard_results, format_table, list_scenarios, run_conformance} from './lib/conformance.mjs';
import {skip_without_gateway, start_gateway, start_upstream, stop_all} from './lib/harness.mjs';

describe('MCP conformance suite through the gateway', {skip: skip_without_gateway}, () => {
  let direct_run = null;
  let gateway_run = null;
  let peers = [];

  after(async () => {
    await stop_all(...peers);
    await discard_results(direct_run);
    await discard_results(gateway_run);
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

        const differences = compare_runs(direct_run, gateway_run);
        const headings = {scenario: 'scenario', expected: 'direct', actual: 'through gateway'};
        const report = `${differences.length} scenario(s) differ through ${gateway.url}:\n` +
            `${format_table(headings, differences)}\n\n${gateway.process.describe()}`;
        assert.equal(differences.length, 0, report);
        assert.equal(
            gateway_run.exit_code, direct_run.exit_code,
            'the suite exit status differs although every scenario matched');
      });
});
