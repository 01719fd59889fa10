/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5.0 enhanced authentication method
 * (Authentication Method "SCRAM-SHA-256"), backed by the password file: `courier passwd`
 * stores a SCRAM credential beside each scrypt hash. The exchange:
 *
 *   CONNECT  data = client-first   "n,,n=<user>,r=<client nonce>"
 *   AUTH 18  data = server-first   "r=<nonce>,s=<salt>,i=<iterations>"
 *   AUTH 18  data = client-final   "c=biws,r=<nonce>,p=<proof>"
 *   CONNACK  data = server-final   "v=<server signature>"
 *
 * Unknown users get a made-up salt derived from a per-process secret, so the exchange does not
 * reveal which users exist. Channel binding is not offered ("n" / "y" headers only).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ReasonCode } from '../protocol/constants.js';
import type { PasswordFile, ScramCredential } from './passwords.js';
import type { EnhancedAuthenticator, EnhancedAuthStep } from './types.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const FAKE_SECRET = randomBytes(32);
const FAIL: EnhancedAuthStep = { continue: false, result: { ok: false, reasonCode: ReasonCode.NotAuthorized, reason: 'SCRAM authentication failed' } };

/** RFC 5802 §5.1 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is invalid. */
function decodeSaslName(s: string): string | undefined {
  if (/=(?!2C|3D)/.test(s)) return undefined;
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

function attributes(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

function fakeCredential(user: string): ScramCredential {
  const salt = createHmac('sha256', FAKE_SECRET).update(user).digest().subarray(0, 16);
  return { iterations: 4096, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

export function scramSha256(file: PasswordFile): EnhancedAuthenticator {
  return () => {
    let clientFirstBare = '';
    let serverFirst = '';
    let gs2 = '';
    let nonce = '';
    let user = '';
    let cred: ScramCredential | undefined;
    let real = false;
    let done = false;
    return {
      step(data): EnhancedAuthStep {
        if (done) return FAIL;
        const text = data?.toString('utf8') ?? '';
        if (cred === undefined) {
          // client-first-message = gs2-header client-first-message-bare
          const m = /^([ny]),(?:a=[^,]*)?,(.*)$/.exec(text);
          if (!m) return ((done = true), FAIL);
          gs2 = text.slice(0, text.length - m[2]!.length);
          clientFirstBare = m[2]!;
          const attrs = attributes(clientFirstBare);
          const name = decodeSaslName(attrs.get('n') ?? '');
          const cnonce = attrs.get('r');
          if (name === undefined || name === '' || cnonce === undefined || cnonce === '' || clientFirstBare.startsWith('m=')) return ((done = true), FAIL);
          user = name;
          const stored = file.scram(user);
          real = stored !== undefined;
          cred = stored ?? fakeCredential(user);
          nonce = cnonce + randomBytes(18).toString('base64');
          serverFirst = `r=${nonce},s=${cred.salt.toString('base64')},i=${cred.iterations}`;
          return { continue: true, data: Buffer.from(serverFirst) };
        }
        done = true;
        const attrs = attributes(text);
        const proofB64 = attrs.get('p');
        const proofAt = text.lastIndexOf(',p=');
        if (attrs.get('c') !== Buffer.from(gs2).toString('base64') || attrs.get('r') !== nonce || proofB64 === undefined || proofAt < 0) return FAIL;
        const finalWithoutProof = text.slice(0, proofAt);
        const authMessage = `${clientFirstBare},${serverFirst},${finalWithoutProof}`;
        const proof = Buffer.from(proofB64, 'base64');
        if (proof.length !== 32) return FAIL;
        const clientSignature = createHmac('sha256', cred.storedKey).update(authMessage).digest();
        const clientKey = Buffer.alloc(32);
        for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
        const ok = timingSafeEqual(createHash('sha256').update(clientKey).digest(), cred.storedKey) && real;
        if (!ok) return FAIL;
        const serverSignature = createHmac('sha256', cred.serverKey).update(authMessage).digest();
        return { continue: false, result: { ok: true, username: user }, data: Buffer.from(`v=${serverSignature.toString('base64')}`) };
      },
    };
  };
}
