/** What both entries export besides `connect`. */
export { Client } from './client.js';
export { ClientError, ClosedError, ConnectionError, LimitError, QueueFullError, RefusedError } from './errors.js';
export type { Subscription } from './subscription.js';
export type { RequestOptions } from './request.js';
export type * from './types.js';
export type { SessionStore, StoredPublish, StoredSession } from './store.js';
