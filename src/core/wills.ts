/** Wills are authorized when they are published (`BrokerCore.willGate`), then routed as any message. */
import type { Logger } from '../options.js';
import type { BrokerCore } from './broker-core.js';
import type { Message } from './message.js';

/** Publishes a will if the authorizer allows it (wills are authorized when they are published). */
export function publishGatedWill(
  core: Pick<BrokerCore, 'willGate' | 'counters' | 'publish'>,
  log: Logger,
  message: Message,
  clientId: string,
  owner: string | undefined,
): void {
  const ok = core.willGate === undefined ? true : core.willGate(message, clientId, owner);
  const go = (allowed: boolean): void => {
    if (!allowed) {
      log.info({ clientId, topic: message.topic }, 'will not authorized; dropped');
      return;
    }
    core.counters.willsPublished++;
    core.publish(message, clientId);
  };
  if (typeof ok === 'boolean') go(ok);
  else ok.then(go, (err: unknown) => log.error({ err, clientId }, 'will authorization failed; will dropped'));
}
