/** `courier sub`: mosquitto_sub's flags: -t (repeatable), -T, -C, -W (exit 27), -v, -F, -N, -R, -E, --retained-only, --remove-retained, -U. */
import type { Message, SubscribeOptions } from '../types.js';
import { all, has, int, one, parseFlags, UsageError } from './args.js';
import {
  CONNECTION_FLAGS,
  CONNECTION_HELP,
  EXIT_ERROR,
  EXIT_OK,
  EXIT_TIMEOUT,
  closeOptions,
  connectFrom,
  propertiesFor,
  qosOf,
  targetOf,
  type ToolIO,
} from './common.js';
import { render } from './format.js';

export const SUB_HELP = `Usage: courier sub -t FILTER [-t FILTER ...] [options]
Subscribes and prints messages like mosquitto_sub (MQTT 5 by default; -V 311 for 3.1.1).
  -t FILTER       subscribe (repeatable)      -T FILTER  do not print topics matching it
  -U FILTER       unsubscribe first (with -c, to drop a kept subscription)
  -C N            exit after N messages       -W SECONDS exit (code 27) after this long
  -v              print "topic payload"       -N  no newline after each message
  -F FORMAT       mosquitto's format (%t %p %x %l %q %r %I %U %j %J %C %D %E %F %P %R %S)
  -R              skip retained (stale) messages
  -E              exit once subscribed        --retained-only  print retained messages, exit at the first live one
  --remove-retained  clear every retained message received
  --nl --rap --rh N  v5 No Local, Retain As Published, Retain Handling
${CONNECTION_HELP}Exit: 0 done, 1 error, 27 on -W timeout, CONNACK reason code when refused.
`;

const FLAGS = [
  ...CONNECTION_FLAGS,
  { short: 't', long: 'topic', values: 1, repeat: true },
  { short: 'T', long: 'filter-out', values: 1, repeat: true },
  { short: 'U', long: 'unsubscribe', values: 1, repeat: true },
  { short: 'C', long: 'count', values: 1 },
  { short: 'W', long: 'timeout', values: 1 },
  { short: 'v', long: 'verbose', values: 0 },
  { short: 'N', long: 'no-eol', values: 0 },
  { short: 'F', long: 'format', values: 1 },
  { short: 'R', long: 'no-stale', values: 0 },
  { short: 'E', long: 'exit-after-subscribe', values: 0 },
  { long: 'retained-only', values: 0 },
  { long: 'remove-retained', values: 0 },
  { long: 'nl', values: 0 },
  { long: 'rap', values: 0 },
  { long: 'rh', values: 1 },
] as const;

/** True when `topic` matches `filter` (for -T). */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return !(i === 0 && topic.startsWith('$'));
    if (i >= t.length) return false;
    if (f[i] === '+') {
      if (i === 0 && topic.startsWith('$')) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export async function subMain(argv: readonly string[], io: ToolIO): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (has(p, 'help')) {
    io.stdout.write(SUB_HELP);
    return EXIT_OK;
  }
  const filters = all(p, 'topic');
  const fromUrl = targetOf(p).topic;
  if (filters.length === 0 && fromUrl !== undefined) filters.push(fromUrl);
  if (filters.length === 0) throw new UsageError('a topic filter is needed (-t)');
  const count = int(p, 'count', 1, 0x7fffffff);
  const timeout = int(p, 'timeout', 1, 0x7fffffff);
  const rh = int(p, 'rh', 0, 2) as 0 | 1 | 2 | undefined;
  const out = { format: one(p, 'format'), verbose: has(p, 'verbose'), eol: !has(p, 'no-eol') };
  const filterOut = all(p, 'filter-out');
  const client = await connectFrom(p, 'sub', io);
  if (typeof client === 'number') return client;

  let received = 0;
  let finished = false;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  const finish = (code: number): void => {
    finished = true;
    resolveDone(code);
  };
  const timer = timeout === undefined ? undefined : setTimeout(() => finish(EXIT_TIMEOUT), timeout * 1000);
  client.on('close', ({ error }) => {
    if (error !== undefined && !has(p, 'quiet')) io.stderr.write(`Error: ${error.message}\n`);
    finish(EXIT_ERROR);
  });
  const onMessage = (m: Message): void => {
    if (finished) return;
    if (has(p, 'retained-only') && !m.retain) return finish(EXIT_OK);
    if (has(p, 'remove-retained') && m.retain && m.payload.length > 0) void client.publish(m.topic, '', { retain: true, qos: 0 }).catch(() => undefined);
    if (has(p, 'no-stale') && m.retain) return;
    if (filterOut.some((f) => matches(f, m.topic))) return;
    io.stdout.write(render(m, out));
    received++;
    if (count !== undefined && received >= count) finish(EXIT_OK);
  };
  try {
    // -U: UNSUBSCRIBE alone (a kept session's subscription), with -D unsubscribe properties.
    const unsubscribe = all(p, 'unsubscribe');
    if (unsubscribe.length > 0) {
      const codes = await client.unsubscribe(unsubscribe, { userProperties: propertiesFor(p, 'unsubscribe').userProperties });
      if (has(p, 'debug')) io.stderr.write(`Client ${client.clientId} unsubscribed from ${unsubscribe.join(' ')} (${codes.join(' ') || 'ok'})\n`);
    }
    const options: SubscribeOptions = { qos: qosOf(p), noLocal: has(p, 'nl'), retainAsPublished: has(p, 'rap'), handler: onMessage };
    if (rh !== undefined) options.retainHandling = rh;
    const subProps = propertiesFor(p, 'subscribe').userProperties;
    if (subProps !== undefined) options.userProperties = subProps;
    for (const f of filters) {
      const s = await client.subscribe(f, options);
      if (has(p, 'debug')) io.stderr.write(`Client ${client.clientId} subscribed to ${f} (granted QoS ${s.grantedQoS})\n`);
    }
    if (has(p, 'exit-after-subscribe')) finish(EXIT_OK);
    return await done;
  } catch (e) {
    if (!has(p, 'quiet')) io.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_ERROR;
  } finally {
    clearTimeout(timer);
    await client.close(closeOptions(p));
  }
}
