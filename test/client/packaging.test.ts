/**
 * The broker package and the client package as npm would ship them. The broker loads the client
 * (`courier pub|sub|rr|bench`, bridges) by its package name when running from dist/, so it must
 * depend on it: a plain `npm ci` links the workspace, an install from the registry fetches it.
 * `npm pack --dry-run` lists what each tarball would hold; the built broker runs `courier pub`
 * through the package name (spawned: run `npm run build` first, as for every spawned test).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(path, `file://${root}`), 'utf8')) as Record<string, unknown>;

function packedFiles(workspace?: string): string[] {
  const args = ['pack', '--dry-run', '--json', '--ignore-scripts', ...(workspace === undefined ? [] : ['-w', workspace])];
  const out = JSON.parse(execFileSync('npm', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{
    files: Array<{ path: string }>;
  }>;
  return out[0]!.files.map((f) => f.path);
}

void describe('packaging: the broker depends on @courier/client, the tarballs hold what is loaded', () => {
  void it('the root package depends on @courier/client at the workspace version (pinned) and the lock file agrees', () => {
    const pkg = readJson('package.json') as { dependencies: Record<string, string> };
    const client = readJson('packages/client/package.json') as { name: string; version: string };
    assert.equal(pkg.dependencies[client.name], client.version);
    const lock = readJson('package-lock.json') as { packages: Record<string, { dependencies?: Record<string, string> }> };
    assert.equal(lock.packages['']!.dependencies?.[client.name], client.version);
  });

  void it('npm pack: the client ships its three entries and types, the broker its dist and bin', () => {
    const client = packedFiles('@courier/client');
    for (const f of ['dist/index.js', 'dist/web.js', 'dist/cli.js', 'dist/types/packages/client/src/index.d.ts', 'package.json']) {
      assert.ok(client.includes(f), `@courier/client packs ${f}`);
    }
    assert.ok(!client.some((f) => f.startsWith('src/')), 'no sources in the client tarball');
    const broker = packedFiles();
    for (const f of ['bin/courier.js', 'dist/index.js', 'dist/cli/client-tools.js']) assert.ok(broker.includes(f), `courier packs ${f}`);
  });

  void it(
    'the built broker runs `courier pub --help` through the package name',
    { skip: existsSync(`${root}dist/cli/client-tools.js`) ? false : 'run npm run build first' },
    () => {
      const r = spawnSync(process.execPath, ['bin/courier.js', 'pub', '--help'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /Usage: courier pub/);
    },
  );
});
