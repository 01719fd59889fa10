/**
 * The subscription index: a session's subscriptions in the core's topic trie (key = client id),
 * shared ones [MQTT-4.8.2] in their group (one trie entry per group, key = NUL + group name),
 * and the cluster told of interest that comes and goes.
 */
import { parseSharedFilter } from '../topics/validate.js';
import type { BrokerCore } from './broker-core.js';
import type { Session, Subscription } from './session.js';

/** What the index is made of (the core's trie, shared groups and cluster link). */
export type IndexCore = Pick<BrokerCore, 'subscriptions' | 'shared' | 'cluster'>;

/** Adds or replaces a subscription [MQTT-3.8.4-3]; returns whether one with that filter existed. */
export function subscribe(core: IndexCore, session: Session, sub: Subscription): boolean {
  const existed = session.subscriptions.has(sub.filter);
  session.setSubscription(sub);
  const sf = parseSharedFilter(sub.filter);
  if (sf === null) {
    core.subscriptions.add(sub.filter, session.clientId, sub);
    if (!existed) core.cluster?.interest(sub.filter, true);
    return existed;
  }
  const key = `${sf.group}/${sf.filter}`;
  let g = core.shared.get(key);
  if (g === undefined) {
    g = { group: sf.group, filter: sf.filter, members: new Map(), order: [], cursor: 0, sticky: undefined };
    core.shared.set(key, g);
    core.subscriptions.add(sf.filter, `\u0000${sf.group}`, g);
  }
  if (!g.members.has(session.clientId)) {
    g.order.push(session.clientId);
    core.cluster?.interest(sub.filter, true);
  }
  g.members.set(session.clientId, sub);
  return existed;
}

export function unsubscribe(core: IndexCore, session: Session, filter: string): boolean {
  if (!session.deleteSubscription(filter)) return false;
  const sf = parseSharedFilter(filter);
  if (sf === null) {
    core.subscriptions.remove(filter, session.clientId);
    core.cluster?.interest(filter, false);
    return true;
  }
  const key = `${sf.group}/${sf.filter}`;
  const g = core.shared.get(key);
  if (g !== undefined && g.members.delete(session.clientId)) {
    core.cluster?.interest(filter, false);
    g.order.splice(g.order.indexOf(session.clientId), 1);
    if (g.sticky === session.clientId) g.sticky = undefined;
    if (g.members.size === 0) {
      core.shared.delete(key);
      core.subscriptions.remove(sf.filter, `\u0000${sf.group}`);
    }
  }
  return true;
}
