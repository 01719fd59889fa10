/**
 * `diagnostics_channel` events, so that applications embedding Courier can observe it without
 * hooks (`import { subscribe } from 'node:diagnostics_channel'`). Channels are created once;
 * every publish is guarded by `hasSubscribers`, so an unobserved channel costs one property read.
 *
 * | channel | message |
 * |---|---|
 * | `courier:client:connect` | `{ client, sessionPresent }` |
 * | `courier:client:disconnect` | `{ client, reason }` |
 * | `courier:message:publish` | `{ topic, payload, qos, retain, clientId }` (clientId '' = the broker) |
 * | `courier:client:subscribe` | `{ client, subscriptions }` |
 * | `courier:client:unsubscribe` | `{ client, filters }` |
 * | `courier:admin:action` | `{ user, action, target }` |
 */
import { channel } from 'node:diagnostics_channel';

export const channels = {
  connect: channel('courier:client:connect'),
  disconnect: channel('courier:client:disconnect'),
  publish: channel('courier:message:publish'),
  subscribe: channel('courier:client:subscribe'),
  unsubscribe: channel('courier:client:unsubscribe'),
  adminAction: channel('courier:admin:action'),
} as const;

export const CHANNEL_NAMES = Object.values(channels).map((c) => String(c.name));
