// A gateway in front of the Python interpreter stand-in (stdio) with a policy that holds calls
// for approval, identities with fresh keys, a full-arguments audit log and an admin listener
// with a token: what the approval tests share.
import {createHash, randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {mkdir, mkdtemp, readFile, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {start_gateway} from './harness.mjs';
import {fixture} from './stdio.mjs';

export function sha256_hex(text) { return createHash('sha256').update(text).digest('hex'); }

export async function audit_lines(file) {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// Resolves with {gateway, dir, audit, keys (name -> key), auth (the admin Authorization
// header), admin_token}; the caller stops the gateway and removes `dir`.
export async function start_approval_gateway({policy, identities = ['alice'], prefix}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `mcpgate-e2e-${prefix}-`));
  await mkdir(path.join(dir, 'workspace'));
  const audit = path.join(dir, 'audit.log');
  const keys = Object.fromEntries(identities.map((n) => [n, randomBytes(24).toString('base64url')]));
  const admin_token = randomBytes(24).toString('base64url');
  await writeFile(path.join(dir, 'policy.json'), JSON.stringify(policy));
  const config = path.join(dir, 'mcpgate.json');
  await writeFile(config, JSON.stringify({
    upstream: {command: ['python3', fixture, '--dir', path.join(dir, 'workspace')]},
    identities: Object.entries(keys).map(([name, key]) => ({name, key_sha256: sha256_hex(key),
                                                             grant: 'agents'})),
    grants: {agents: {policy: 'policy.json'}},
    audit: {path: audit, flush_interval_ms: 10, arguments: 'full'},
    admin: {listen: '127.0.0.1:0', token_sha256: sha256_hex(admin_token)},
  }));
  const gateway = await start_gateway({config, admin: true});
  return {gateway, dir, audit, keys, admin_token, auth: {authorization: `Bearer ${admin_token}`}};
}
