/**
 * One entry of a node's inbox applied (the kinds are listed in scripts.ts): forwards delivered
 * to the core, hand-overs of a moved session, kicks, redirected entries, barriers and cuts told
 * to the node.
 */
import type { SessionFilter } from '../core/broker-core.js';
import { readBatch } from './wire.js';
import { field, handedOverEntries, markOf } from './stream-fields.js';
import type { ClusterCore, TailOwner } from './tail-types.js';

/** One inbox entry (scripts.ts lists the kinds); returns the messages it carried. */
export function inboxEntry(fields: Buffer[], owner: TailOwner, core: ClusterCore): number {
  const kind = fields[0]?.toString();
  if (kind === 'o') {
    // Handed over by the node a session moved from: for that session only.
    const batch = field(fields, 'b');
    if (batch === undefined) return 0;
    const cid = fields[1]!.toString();
    // It moved on from here meanwhile (kicked before this entry was read): passed on to its new
    // node, which left these to us, or they reach nobody.
    const onward = owner.movedOn(cid);
    if (onward !== undefined) return readBatch(batch, (f) => owner.handOver(onward, cid, f.message));
    const only: SessionFilter = { only: new Set([cid]), back: true };
    return readBatch(batch, (f) => core.publishForwarded(f.message, true, undefined, only));
  }
  if (kind === 'f' || kind === 'x') {
    const batch = field(fields, 'b');
    if (batch === undefined) return 0;
    if (kind === 'x') {
      const dead = Number(fields[1]!.toString());
      const only = owner.adoptedFrom(dead) ?? new Set<string>();
      return readBatch(batch, (f) => {
        if (only.size > 0) core.publishForwarded(f.message, f.plain, f.groups, { only, back: true });
        if (f.plain) owner.forwardedForDead(dead, f.message);
      });
    }
    const d = field(fields, 'd')?.toString();
    const sender = Number(fields[1]!.toString());
    const viaStore = field(fields, 's') !== undefined;
    return readBatch(batch, (f) => {
      const exclude = d === undefined ? undefined : owner.excluded(d, f.message.topic, sender, viaStore);
      core.publishForwarded(f.message, f.plain, f.groups, exclude === undefined || exclude.size === 0 ? undefined : { exclude });
      if (f.plain) owner.forwardedHere(f.message);
    });
  }
  if (kind === 'k') {
    owner.kicked(fields[1]!.toString(), field(fields, 't')?.toString() ?? '', field(fields, 'c')?.toString() === '1');
    return 0;
  }
  if (kind === 'r') {
    const entries = handedOverEntries(fields);
    owner.redirected(fields[1]!.toString(), entries);
    return entries.length;
  }
  if (kind === 'b' || kind === 'a' || kind === 'c') {
    const mark = markOf(fields);
    if (mark === undefined) return 0;
    if (kind === 'c') owner.cut(fields[1]!.toString(), mark.from);
    else owner.barrier(kind, fields[1]!.toString(), mark.from, mark.seq);
    return 0;
  }
  return 0;
}
