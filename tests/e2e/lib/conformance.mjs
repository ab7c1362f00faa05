// Runs the MCP conformance suite (@modelcontextprotocol/conformance) in server mode, where it
// acts as an MCP client against a server URL, and reads back what it found per scenario.
//
// The CLI, as of 0.1.16:
//   conformance server --url URL [--suite active|all|pending] [-o DIR]
// prints `Running <suite> suite (<n> scenarios) against <url>`, one block per scenario, then
//   === SUMMARY ===
//   ✓ <scenario>: <passed> passed, <failed> failed      (✗ when failed > 0)
//   Total: <passed> passed, <failed> failed
// and exits 1 when any check failed. With -o it also writes DIR/server-<scenario>-<ISO time with
// ':' and '.' as '-'>/checks.json: an array of { id, name, status, errorMessage?, ... } with
// status SUCCESS, FAILURE, WARNING or INFO. A scenario that throws gets a summary line
// (one failed check) but no checks.json, so the summary is the list of scenarios and the
// checks files add detail.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {package_file, start_process} from './harness.mjs';

const suite_header = /^Running (\S+) suite \((\d+) scenarios\) against /m;
const summary_line = /^([✓✗]) (\S+): (\d+) passed, (\d+) failed$/;
const result_dir = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

// Runs the suite against `url` and resolves with
//   { exit_code, declared_count, scenarios: Map<name, scenario_result>, output, results_dir }
// where scenario_result is { outcome: 'pass' | 'fail', passed, failed, checks } and checks is a
// Map<check id, status>, or null when the scenario wrote no checks.json. Throws when the run
// does not finish within `timeout_ms` or prints no summary, with its output in the message.
export async function run_conformance({url, suite = 'active', timeout_ms = 180_000}) {
  const results_dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mcpgate-conformance-'));
  const entry = package_file('@modelcontextprotocol/conformance', 'dist/index.js');
  const args = [entry, 'server', '--url', url, '--suite', suite, '-o', results_dir];
  const child = start_process('conformance', process.execPath, args);
  const lines = [];
  child.watch_lines((stream_name, line) => {
    if (stream_name === 'stdout') lines.push(line);
  });

  let timer;
  const timed_out = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), timeout_ms);
  });
  const exit = await Promise.race([child.exited, timed_out]);
  clearTimeout(timer);
  if (!exit) {
    await child.stop({signal: 'SIGKILL'});
    throw new Error(
        `conformance run against ${url} took over ${timeout_ms} ms\n${child.describe()}`);
  }

  const output = lines.join('\n');
  const header = suite_header.exec(output);
  const summary_start = lines.indexOf('=== SUMMARY ===');
  if (!header || summary_start < 0) {
    throw new Error(
        `conformance run against ${url} printed no suite header or summary\n${child.describe()}`);
  }
  const scenarios = new Map();
  for (const line of lines.slice(summary_start + 1)) {
    const match = summary_line.exec(line);
    if (!match) continue;
    const [, mark, name, passed, failed] = match;
    scenarios.set(name, {
      outcome: mark === '✓' ? 'pass' : 'fail',
      passed: Number(passed),
      failed: Number(failed),
      checks: null,
    });
  }
  for (const entry_name of await fs.readdir(results_dir)) {
    const match = result_dir.exec(entry_name);
    const scenario = match && scenarios.get(match[1]);
    if (!scenario) continue;
    const checks =
        JSON.parse(await fs.readFile(path.join(results_dir, entry_name, 'checks.json'), 'utf8'));
    scenario.checks = new Map(checks.map((check) => [check.id, check.status]));
  }
  return {
    exit_code: exit.code,
    declared_count: Number(header[2]),
    scenarios,
    output,
    results_dir,
  };
}

// Removes a run's results directory.
export async function discard_results(run) {
  if (run) await fs.rm(run.results_dir, {recursive: true, force: true});
}

function describe_scenario(scenario) {
  if (!scenario) return 'missing';
  const failing = scenario.checks ? [...scenario.checks]
                                        .filter(([, status]) => status !== 'SUCCESS')
                                        .map(([id, status]) => `${id}=${status}`) :
                                    ['no checks.json'];
  const detail = failing.length > 0 ? ` [${failing.join(', ')}]` : '';
  return `${scenario.outcome} ${scenario.passed}/${scenario.passed + scenario.failed}${detail}`;
}

function same_checks(left, right) {
  if (left === null || right === null) return left === right;
  if (left.size !== right.size) return false;
  for (const [id, status] of left)
    if (right.get(id) !== status) return false;
  return true;
}

// Compares two runs scenario by scenario. Two scenarios match when their outcome, pass and fail
// counts and every check's status agree (check messages are ignored: they quote URLs and
// ports). Returns one { scenario, expected, actual } row per mismatch, in suite order.
export function compare_runs(expected_run, actual_run) {
  const names = [...new Set([...expected_run.scenarios.keys(), ...actual_run.scenarios.keys()])];
  const rows = [];
  for (const name of names) {
    const expected = expected_run.scenarios.get(name);
    const actual = actual_run.scenarios.get(name);
    const same = expected && actual && expected.outcome === actual.outcome &&
        expected.passed === actual.passed && expected.failed === actual.failed &&
        same_checks(expected.checks, actual.checks);
    if (!same)
      rows.push({
        scenario: name,
        expected: describe_scenario(expected),
        actual: describe_scenario(actual)
      });
  }
  return rows;
}

// A fixed-width text table of `rows` (objects with the same keys) under `headings`.
export function format_table(headings, rows) {
  const keys = Object.keys(headings);
  const widths = keys.map(
      (key) => Math.max(headings[key].length, ...rows.map((row) => String(row[key]).length)));
  const format_row = (row) =>
      keys.map((key, i) => String(row[key]).padEnd(widths[i])).join(' | ').trimEnd();
  return [
    format_row(headings), widths.map((width) => '-'.repeat(width)).join('-+-'),
    ...rows.map(format_row)
  ].join('\n');
}

// One line per scenario of a run, for the test log.
export function list_scenarios(run) {
  return [...run.scenarios].map(([name, scenario]) => `${name}: ${describe_scenario(scenario)}`);
}
