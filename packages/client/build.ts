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

/**
 * In the browser bundle, three of the codec's modules are replaced by their client-only web
 * versions: `bytes.js` (Uint8Array, TextEncoder/TextDecoder instead of Buffer),
 * `parse-requests.js` (CONNECT/SUBSCRIBE/UNSUBSCRIBE, which only a server decodes) and
 * `encode-responses.js` (CONNACK/SUBACK/UNSUBACK, which only a server sends).
 */
const WEB_MODULES: Record<string, string> = {
  'bytes.js': 'bytes-web.ts',
  'parse-requests.js': 'parse-requests-web.ts',
  'encode-responses.js': 'encode-responses-web.ts',
};

const webCodec: Plugin = {
  name: 'web-codec',
  setup(b) {
    b.onResolve({ filter: /\/(bytes|parse-requests|encode-responses)\.js$/ }, (args) => {
      const target = join(args.resolveDir, args.path);
      if (dirname(target) !== protocolDir) return undefined;
      const web = WEB_MODULES[target.slice(protocolDir.length + 1)];
      return web === undefined ? undefined : { path: join(protocolDir, web) };
    });
  },
};

const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, legalComments: 'none', logLevel: 'warning' } as const;

/** The browser bundle alone (one ES module, minified), into `outfile`. */
export async function buildWeb(outfile: string): Promise<void> {
  await build({ ...common, sourcemap: false, platform: 'browser', entryPoints: [join(here, 'src/web.ts')], outfile, minify: true, plugins: [webCodec] });
}

export async function buildClient(outdir = join(here, 'dist')): Promise<void> {
  await Promise.all([
    build({ ...common, platform: 'node', entryPoints: { index: join(here, 'src/index.ts'), cli: join(here, 'src/cli/main.ts') }, outdir, external: ['ws'] }),
    build({ ...common, platform: 'browser', entryPoints: { web: join(here, 'src/web.ts') }, outdir, minify: true, plugins: [webCodec] }),
  ]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildClient();
