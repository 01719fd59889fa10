/**
 * `courier pub | sub | rr | bench`: the client tools. The broker's `courier` command dispatches
 * here (src/cli/client-tools.ts); `run` returns the exit code.
 */
import { UsageError } from './args.js';
import { EXIT_ERROR, type ToolIO } from './common.js';
import { pubMain } from './pub.js';
import { rrMain } from './rr.js';
import { subMain } from './sub.js';
import { benchMain } from './bench.js';

export const TOOLS = ['pub', 'sub', 'rr', 'bench'] as const;

const defaultIO = (): ToolIO => ({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });

export async function run(tool: string, argv: readonly string[], io: ToolIO = defaultIO()): Promise<number> {
  try {
    switch (tool) {
      case 'pub':
        return await pubMain(argv, io);
      case 'sub':
        return await subMain(argv, io);
      case 'rr':
        return await rrMain(argv, io);
      case 'bench':
        return await benchMain(argv, io);
      default:
        throw new UsageError(`unknown tool ${tool} (${TOOLS.join(', ')})`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`courier ${tool}: ${e.message}\n(courier ${tool} --help for usage)\n`);
      return EXIT_ERROR;
    }
    io.stderr.write(`courier ${tool}: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_ERROR;
  }
}
