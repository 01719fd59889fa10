/** `courier rr`: mosquitto_rr: publish a request with a Response Topic (MQTT 5), print the first response. */
import { readFileSync } from 'node:fs';
import { ClientError } from '../errors.js';
import type { Payload } from '../types.js';
import { has, int, one, parseFlags, UsageError } from './args.js';
import {
  CONNECTION_FLAGS,
  CONNECTION_HELP,
  EXIT_ERROR,
  EXIT_OK,
  EXIT_TIMEOUT,
  closeOptions,
  connectFrom,
  propertiesFor,
  protocolVersion,
  qosOf,
  type ToolIO,
} from './common.js';
import { render } from './format.js';

export const RR_HELP = `Usage: courier rr -t REQUEST-TOPIC [-e RESPONSE-TOPIC] (-m MSG | -f FILE | -s | -n) [options]
Sends one MQTT 5 request and prints the response, like mosquitto_rr.
  -t TOPIC   request topic            -e TOPIC  response topic (default: a unique one)
  -m -f -s -n  the request payload    -W SECONDS  give up (exit 27)
  -v -N -F   output as courier sub
${CONNECTION_HELP}Exit: 0 answered, 1 error, 27 on -W timeout, CONNACK reason code when refused.
`;

const FLAGS = [
  ...CONNECTION_FLAGS,
  { short: 't', long: 'topic', values: 1 },
  { short: 'e', long: 'response-topic', values: 1 },
  { short: 'm', long: 'message', values: 1 },
  { short: 'f', long: 'file', values: 1 },
  { short: 's', long: 'stdin-file', values: 0 },
  { short: 'n', long: 'null-message', values: 0 },
  { short: 'W', long: 'timeout', values: 1 },
  { short: 'v', long: 'verbose', values: 0 },
  { short: 'N', long: 'no-eol', values: 0 },
  { short: 'F', long: 'format', values: 1 },
] as const;

export async function rrMain(argv: readonly string[], io: ToolIO): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (has(p, 'help')) {
    io.stdout.write(RR_HELP);
    return EXIT_OK;
  }
  const topic = one(p, 'topic');
  if (topic === undefined) throw new UsageError('a request topic is needed (-t)');
  if (protocolVersion(p) !== 5) throw new UsageError('request/response needs MQTT 5 (-V 5)');
  let payload: Payload = one(p, 'message') ?? '';
  if (has(p, 'file')) payload = readFileSync(one(p, 'file')!);
  if (has(p, 'stdin-file')) {
    const parts: Uint8Array[] = [];
    for await (const c of io.stdin) parts.push(typeof c === 'string' ? new TextEncoder().encode(c) : c);
    payload = Buffer.concat(parts);
  }
  const timeout = int(p, 'timeout', 1, 0x7fffffff);
  const client = await connectFrom(p, 'rr', io);
  if (typeof client === 'number') return client;
  const out = { format: one(p, 'format'), verbose: has(p, 'verbose'), eol: !has(p, 'no-eol') };
  try {
    const responseTopic = one(p, 'response-topic');
    const props = propertiesFor(p, 'publish');
    delete props.sessionExpiry;
    let reply;
    const wait = timeout === undefined ? 0x7fffffff : timeout * 1000;
    if (responseTopic === undefined) {
      reply = await client.request(topic, payload, { qos: qosOf(p), timeout: wait, properties: props });
    } else {
      // A fixed response topic, as mosquitto_rr -e: subscribe to it, then publish the request.
      const sub = await client.subscribe(responseTopic, { qos: qosOf(p) });
      const it = sub[Symbol.asyncIterator]();
      await client.publish(topic, payload, { qos: qosOf(p), properties: { ...props, responseTopic } });
      let t: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([it.next(), new Promise<'timeout'>((res) => (t = setTimeout(() => res('timeout'), wait)))]);
      clearTimeout(t);
      if (r === 'timeout') throw new ClientError('TIMEOUT', 'no response');
      if (r.done === true) throw new ClientError('CLOSED', 'subscription ended');
      reply = r.value;
    }
    io.stdout.write(render(reply, out));
    return EXIT_OK;
  } catch (e) {
    if (e instanceof ClientError && e.code === 'TIMEOUT') return EXIT_TIMEOUT;
    if (!has(p, 'quiet')) io.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_ERROR;
  } finally {
    await client.close(closeOptions(p));
  }
}
