/**
 * JWT authentication (via `jose`): the token travels as the CONNECT password. Verified with an
 * HMAC secret (HS256), a PEM public key (RS256/ES256) or a JWKS file; `exp`/`nbf` are always
 * checked, `iss`/`aud` when configured. The user name becomes the configured claim (`sub` by
 * default); a CONNECT user name, when given, must equal it.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, importSPKI, jwtVerify, type CryptoKey, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { Authenticator } from './types.js';

export interface JwtOptions {
  /** HS256 shared secret. */
  secret?: string;
  /** PEM file with an RSA or EC public key (RS256 / ES256). */
  publicKeyFile?: string;
  /** JWKS file (JSON `{keys: [...]}`). */
  jwksFile?: string;
  /** Accepted algorithms; default by key type (HS256, RS256, ES256). */
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  /** Claim that names the user; default 'sub'. */
  usernameClaim?: string;
}

type Key = Uint8Array | CryptoKey | JWTVerifyGetKey;

export async function jwtAuthenticator(o: JwtOptions): Promise<Authenticator> {
  const sources = [o.secret, o.publicKeyFile, o.jwksFile].filter((x) => x !== undefined).length;
  if (sources !== 1) throw new Error('jwt: set exactly one of secret, publicKeyFile, jwksFile');
  let key: Key;
  let algorithms = o.algorithms;
  if (o.secret !== undefined) {
    key = new TextEncoder().encode(o.secret);
    algorithms ??= ['HS256'];
  } else if (o.publicKeyFile !== undefined) {
    const pem = readFileSync(o.publicKeyFile, 'utf8');
    algorithms ??= ['RS256', 'ES256'];
    let imported: CryptoKey | undefined;
    let lastErr: unknown;
    for (const alg of algorithms) {
      try {
        imported = await importSPKI(pem, alg);
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    if (imported === undefined) throw new Error(`jwt: ${o.publicKeyFile} is not a public key for ${algorithms.join('/')}: ${(lastErr as Error).message}`);
    key = imported;
  } else {
    const jwks = JSON.parse(readFileSync(o.jwksFile!, 'utf8')) as Parameters<typeof createLocalJWKSet>[0];
    key = createLocalJWKSet(jwks);
    algorithms ??= ['RS256', 'ES256'];
  }
  const verify: JWTVerifyOptions = { algorithms };
  if (o.issuer !== undefined) verify.issuer = o.issuer;
  if (o.audience !== undefined) verify.audience = o.audience;
  const claim = o.usernameClaim ?? 'sub';
  return async (req) => {
    if (req.password === undefined) return undefined;
    const token = req.password.toString('utf8');
    // Only tokens are ours; anything else is for the next authenticator (e.g. the password file).
    if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) return undefined;
    try {
      const { payload } = typeof key === 'function' ? await jwtVerify(token, key, verify) : await jwtVerify(token, key, verify);
      const name = payload[claim];
      if (typeof name !== 'string' || name.length === 0) return { ok: false, reason: `token has no "${claim}" claim` };
      if (req.username !== undefined && req.username !== '' && req.username !== name) {
        return { ok: false, reason: 'user name does not match the token' };
      }
      return { ok: true, username: name };
    } catch (err) {
      return { ok: false, reason: `invalid token: ${(err as Error).message}` };
    }
  };
}
