/** `courier pub`: mosquitto_pub's flags. One message (-m, -f, -s, -n), or one per stdin line (-l). */
import { readFileSync } from 'node:fs';
import type { PublishOptions } from '../types.js';
import { has, int, one, parseFlags, UsageError } from './args.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, EXIT_ERROR, EXIT_OK, closeOptions, connectFrom, propertiesFor, qosOf, targetOf, type ToolIO } from './common.js';

export const PUB_HELP = `Usage: courier pub -t TOPIC (-m MSG | -f FILE | -l | -s | -n) [options]
Publishes like mosquitto_pub (MQTT 5 by default; -V 311 for 3.1.1).
  -t TOPIC        topic
  -m MSG          message   -f FILE  file contents   -n  empty message
  -s              all of stdin as one message   -l  one message per stdin line
  -r              retain    --repeat N  --repeat-delay SECONDS
${CONNECTION_HELP}Exit: 0 sent (and acknowledged for QoS 1/2), 1 error, CONNACK reason code when refused.
`;

const FLAGS = [
  ...CONNECTION_FLAGS,
  { short: 't', long: 'topic', values: 1 },
  { short: 'm', long: 'message', values: 1 },
  { short: 'f', long: 'file', values: 1 },
  { short: 'l', long: 'stdin-line', values: 0 },
  { short: 's', long: 'stdin-file', values: 0 },
  { short: 'n', long: 'null-message', values: 0 },
  { short: 'r', long: 'retain', values: 0 },
  { long: 'repeat', values: 1 },
  { long: 'repeat-delay', values: 1 },
] as const;

async function readAll(stdin: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stdin) parts.push(typeof c === 'string' ? new TextEncoder().encode(c) : c);
  return Buffer.concat(parts);
}

async function* lines(stdin: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  let rest = '';
  const dec = new TextDecoder();
  for await (const c of stdin) {
    rest += typeof c === 'string' ? c : dec.decode(c, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf('\n')) !== -1) {
      yield rest.slice(0, nl).replace(/\r$/, '');
      rest = rest.slice(nl + 1);
    }
  }
  if (rest !== '') yield rest;
}

export async function pubMain(argv: readonly string[], io: ToolIO): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (has(p, 'help')) {
    io.stdout.write(PUB_HELP);
    return EXIT_OK;
  }
  const topic = one(p, 'topic') ?? targetOf(p).topic;
  if (topic === undefined) throw new UsageError('a topic is needed (-t)');
  const sources = ['message', 'file', 'stdin-line', 'stdin-file', 'null-message'].filter((s) => has(p, s));
  if (sources.length !== 1) throw new UsageError('give exactly one of -m, -f, -l, -s, -n');
  const repeat = int(p, 'repeat', 1, 0x7fffffff) ?? 1;
  const delay = Number(one(p, 'repeat-delay') ?? '0') * 1000;
  const opts: PublishOptions = { qos: qosOf(p), retain: has(p, 'retain') };
  const props = propertiesFor(p, 'publish');
  delete props.sessionExpiry;
  if (Object.keys(props).length > 0) opts.properties = props;
  let payload: Uint8Array | string = '';
  if (has(p, 'message')) payload = one(p, 'message')!;
  else if (has(p, 'file')) payload = readFileSync(one(p, 'file')!);
  else if (has(p, 'stdin-file')) payload = await readAll(io.stdin);

  const client = await connectFrom(p, 'pub', io);
  if (typeof client === 'number') return client;
  const debug = has(p, 'debug');
  try {
    if (has(p, 'stdin-line')) {
      // Bounded in flight: at most 64 unacknowledged publishes (and the server's Receive Maximum, which the client applies).
      const inflight = new Set<Promise<unknown>>();
      for await (const line of lines(io.stdin)) {
        const pr = client.publish(topic, line, opts);
        inflight.add(pr);
        void pr.finally(() => inflight.delete(pr)).catch(() => undefined);
        if (inflight.size >= 64) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    } else {
      for (let i = 0; i < repeat; i++) {
        if (i > 0 && delay > 0) await new Promise((r) => setTimeout(r, delay));
        const r = await client.publish(topic, payload, opts);
        if (debug)
          io.stderr.write(
            `Client ${client.clientId} sending PUBLISH (q${opts.qos}, r${opts.retain ? 1 : 0}, '${topic}') acknowledged with reason code ${r.reasonCode}\n`,
          );
      }
    }
    return EXIT_OK;
  } catch (e) {
    if (!has(p, 'quiet')) io.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_ERROR;
  } finally {
    await client.close(closeOptions(p));
  }
}
