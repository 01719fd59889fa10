/**
 * What a broker loads is what it uses: lmdb, ws, prom-client and jose are required when a store
 * opens, a WebSocket listener starts, the first Metrics is built or a JWT authenticator is set
 * up, not when Courier is imported. An in-memory broker without those features starts in less
 * time and memory (library users, the bench launcher, every --workers worker that lacks them).
 * Checked in a child process, whose module cache is its own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/loaded-packages.ts');
const LAZY = ['jose', 'lmdb', 'prom-client', 'ws'];

function loadedWith(options: Record<string, unknown>, scrape = false): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', child, JSON.stringify(options), ...(scrape ? ['scrape'] : [])],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as string[]);
      },
    );
  });
}

void describe('lazy dependencies', () => {
  void it('an in-memory broker with TCP only loads none of lmdb, ws, prom-client, jose', async () => {
    const loaded = await loadedWith({ persistence: { engine: 'memory' } });
    assert.deepEqual(
      LAZY.filter((p) => loaded.includes(p)),
      [],
    );
  });

  void it('the admin listener loads prom-client at the first scrape of /metrics, not when it starts', async () => {
    const memory = { persistence: { engine: 'memory' }, admin: { port: 0 } };
    assert.ok(!(await loadedWith(memory)).includes('prom-client'), 'loaded without a scrape');
    assert.ok((await loadedWith(memory, true)).includes('prom-client'), 'not loaded by a scrape');
  });

  void it('each is loaded once its feature is used (so the check above can see them)', async () => {
    const loaded = await loadedWith(
      {
        wsPort: 0,
        admin: { port: 0 },
        persistence: { engine: 'lmdb' },
        security: { jwt: { secret: '0123456789abcdef0123456789abcdef' } },
      },
      true,
    );
    assert.deepEqual(
      LAZY.filter((p) => loaded.includes(p)),
      LAZY,
    );
  });
});
