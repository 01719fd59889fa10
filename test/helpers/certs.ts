/**
 * Certificates for TLS tests, made by openssl at test time (tests gate on OPENSSL being there).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

export const OPENSSL = '/usr/bin/openssl';

/** Runs openssl in `dir`; fails the test with its stderr when it fails. */
export function openssl(dir: string, args: readonly string[]): void {
  const r = spawnSync(OPENSSL, args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed server certificate for 127.0.0.1 and localhost: `server.crt` and `server.key` in `dir`. */
export function selfSignedServer(dir: string, commonName: string): void {
  openssl(dir, [
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    'server.key',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
}

/** A CA of its own (`ca.crt`, `ca.key`) and a client certificate it signed (`client.crt`, `client.key`), in `dir`. */
export function clientCertificate(dir: string, commonName: string): void {
  openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${commonName}-ca`]);
  openssl(dir, ['req', ...EC_KEY, '-keyout', 'client.key', '-out', 'client.csr', '-subj', `/CN=${commonName}`]);
  openssl(dir, ['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2']);
}
