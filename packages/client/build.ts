/**
 * Builds the client package with esbuild: `dist/index.js` (Node: TCP, TLS, WebSocket through
 * `ws`), `dist/web.js` (browsers: native WebSocket, minified, the codec's byte operations from
 * src/protocol/bytes-web.ts instead of the Node Buffer ones) and `dist/cli.js` (the `courier
 * pub|sub|rr|bench` tools). The broker's codec (src/protocol) and topic matching (src/topics)
 * are bundled in: one codec, not two.
 *
 *   npx tsx packages/client/build.ts [--metafile]
 */
import { build, type Plugin } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const protocolDir = join(here, '../../src/protocol');

/** In the browser bundle, the codec's `./bytes.js` is `./bytes-web.ts`. */
const webBytes: Plugin = {
  name: 'web-bytes',
  setup(b) {
    b.onResolve({ filter: /\/bytes\.js$/ }, (args) => {
      const target = join(args.resolveDir, args.path);
      if (target === join(protocolDir, 'bytes.js')) return { path: join(protocolDir, 'bytes-web.ts') };
      return undefined;
    });
  },
};

const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, legalComments: 'none', logLevel: 'warning' } as const;

/** The browser bundle alone (one ES module, minified), into `outfile`. */
export async function buildWeb(outfile: string): Promise<void> {
  await build({ ...common, sourcemap: false, platform: 'browser', entryPoints: [join(here, 'src/web.ts')], outfile, minify: true, plugins: [webBytes] });
}

export async function buildClient(outdir = join(here, 'dist')): Promise<void> {
  await Promise.all([
    build({ ...common, platform: 'node', entryPoints: { index: join(here, 'src/index.ts'), cli: join(here, 'src/cli/main.ts') }, outdir, external: ['ws'] }),
    build({ ...common, platform: 'browser', entryPoints: { web: join(here, 'src/web.ts') }, outdir, minify: true, plugins: [webBytes] }),
  ]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildClient();
