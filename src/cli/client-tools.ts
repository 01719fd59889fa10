/**
 * `courier pub | sub | rr | bench` are the client package's tools (packages/client/src/cli):
 * loaded on demand, so the broker's own start-up never loads the client. Run from source (tests,
 * with tsx) they come from the client's source; installed, from the @courier/client package.
 */
export const CLIENT_TOOLS: ReadonlySet<string> = new Set(['pub', 'sub', 'rr', 'bench']);

interface ClientCli {
  run(tool: string, argv: readonly string[]): Promise<number>;
}

const PACKAGE_CLI = '@courier/client/cli';

export async function runClientTool(tool: string, argv: readonly string[]): Promise<number> {
  const fromSource = import.meta.url.endsWith('.ts');
  const specifier = fromSource ? new URL('../../packages/client/src/cli/main.ts', import.meta.url).href : PACKAGE_CLI;
  const mod = (await import(specifier)) as ClientCli;
  return mod.run(tool, argv);
}
