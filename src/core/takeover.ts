/**
 * Cluster II: a CONNECT whose session another node held. The claim (src/cluster/sessions.ts)
 * has fenced the previous owner and read the session as it was stored; here the core takes it
 * in: the stored will is decided once, by this node (the previous owner drops its copy
 * silently), and a session that goes on is restored so that `openSession` resumes it.
 */
import type { BrokerCore } from './broker-core.js';
import { NEVER_EXPIRES } from './broker-core.js';
import type { SessionClaim } from './cluster-link.js';

export function applyClaim(core: BrokerCore, clientId: string, clean: boolean, claim: SessionClaim, now: number): void {
  if (claim.previousOwner === null || claim.previousOwner === claim.self) return;
  // A copy here whose kick was not read yet (the session went elsewhere and came back): stale.
  if (core.sessions.has(clientId) || core.live.has(clientId)) core.evict(clientId);
  const rec = claim.session;
  if (rec === undefined) return;
  const ended = rec.disconnectedAt;
  const expired = ended !== undefined && rec.expiryInterval !== NEVER_EXPIRES && now >= ended + rec.expiryInterval * 1000;
  const goesOn = !clean && !expired && rec.expiryInterval > 0;
  const w = rec.will;
  if (w !== undefined) {
    // [MQTT-3.1.3-9] the will goes out once its delay has passed or the session ends, unless a
    // new connection came before the delay passed. A live connection's will (on the previous
    // owner) counts from now: only a delay of 0 has passed.
    const delayPassed = w.delaySeconds === 0 || (rec.willPending === true && ended !== undefined && now >= ended + w.delaySeconds * 1000);
    if (!goesOn || delayPassed) core.publishStoredWill(w.message, clientId, rec.owner);
  }
  if (!goesOn) {
    // Discarded by the claim (Clean Start), or over: nothing to resume; what is stored goes.
    if (!clean) core.discardStored(clientId);
    return;
  }
  const s = core.restoreSession(rec, claim.outbound, claim.inbound, new Map(), now, false);
  if (s === undefined) return;
  s.claimToken = claim.token;
  if (claim.hold !== undefined) s.hold(claim.hold);
}
