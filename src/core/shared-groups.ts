/**
 * Shared subscription groups: which member of a group gets a message (MQTT 5.0 §4.8.2), chosen
 * by the configured strategy among connected members (a member with a persistent session that is
 * offline only when nobody is connected).
 */
import type { MqttOptions } from '../options.js';
import type { Session, SharedGroup } from './session.js';

/** The member to deliver to, or undefined when no member can take the message. */
export function pickMember(
  g: SharedGroup,
  topic: string,
  exclude: string | undefined,
  sessions: ReadonlyMap<string, Session>,
  strategy: MqttOptions['sharedSubscriptionStrategy'],
): string | undefined {
  const order = g.order;
  const n = order.length;
  if (n === 0) return undefined;
  const online = (id: string): boolean => id !== exclude && sessions.get(id)?.outlet !== undefined;
  switch (strategy) {
    case 'sticky':
      if (g.sticky !== undefined && online(g.sticky)) return g.sticky;
      g.sticky = scan(g, online, Math.floor(Math.random() * n));
      return g.sticky ?? offline(g, exclude, sessions);
    case 'random':
      return scan(g, online, Math.floor(Math.random() * n)) ?? offline(g, exclude, sessions);
    case 'hash': {
      let h = 0;
      for (let i = 0; i < topic.length; i++) h = (Math.imul(h, 31) + topic.charCodeAt(i)) | 0;
      return scan(g, online, (h >>> 0) % n) ?? offline(g, exclude, sessions);
    }
    default: {
      const start = g.cursor % n;
      const id = scan(g, online, start);
      if (id !== undefined) g.cursor = order.indexOf(id) + 1;
      return id ?? offline(g, exclude, sessions);
    }
  }
}

/** The first member from `start` on (wrapping) that passes `ok`. */
function scan(g: SharedGroup, ok: (id: string) => boolean, start: number): string | undefined {
  const order = g.order;
  for (let i = 0; i < order.length; i++) {
    const id = order[(start + i) % order.length]!;
    if (ok(id)) return id;
  }
  return undefined;
}

/** With nobody connected: a member whose session outlives its connection (the message queues there). */
function offline(g: SharedGroup, exclude: string | undefined, sessions: ReadonlyMap<string, Session>): string | undefined {
  return scan(g, (id) => id !== exclude && (sessions.get(id)?.expiryInterval ?? 0) > 0, g.cursor % g.order.length);
}
