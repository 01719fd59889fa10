/**
 * The broker's security chain: authenticators (hooks, password file, JWT, client certificates)
 * asked in order until one decides, the anonymous policy for undecided clients, and authorizers
 * (hooks, ACL file) for publish and subscribe. Results may be synchronous; the connection only
 * pauses its input when a hook really returns a promise.
 */
import type { Logger } from '../options.js';
import { ReasonCode } from '../protocol/constants.js';
import type { JwtOptions } from './jwt.js';
import type {
  AuthenticationRequest,
  AuthenticationResult,
  Authenticator,
  AuthorizationRequest,
  AuthorizationResult,
  Authorizer,
  EnhancedAuthenticator,
} from './types.js';

export type * from './types.js';
export type { JwtOptions } from './jwt.js';

export interface SecurityOptions {
  /**
   * Clients no authenticator vouches for: true = accepted everywhere (a warning is logged for
   * non-loopback listeners), false = refused everywhere; default: accepted on loopback listeners only.
   */
  allowAnonymous?: boolean;
  /** Password file (`courier passwd FILE USER` manages it); reloaded when it changes. */
  passwordFile?: string;
  /** ACL file; deny by default once given; reloaded when it changes. */
  aclFile?: string;
  jwt?: JwtOptions;
  /** A persistent session can be resumed only by the user that created it. */
  sessionOwnership?: boolean;
  /** Accept a verified TLS client certificate as authentication; its CN becomes the user name. */
  certificateAuth?: boolean;
}

export interface Decision {
  allow: boolean;
  reasonCode: number;
}

const ALLOW: Decision = { allow: true, reasonCode: 0 };
const DENY: Decision = { allow: false, reasonCode: ReasonCode.NotAuthorized };

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

function toDecision(r: AuthorizationResult): Decision {
  if (r === true) return ALLOW;
  if (r === false) return DENY;
  if (r.allow) return ALLOW;
  return { allow: false, reasonCode: r.reasonCode ?? ReasonCode.NotAuthorized };
}

interface Closable {
  close(): void;
}

export class Security {
  readonly options: SecurityOptions;
  readonly #authenticators: Authenticator[];
  readonly #authorizers: Authorizer[];
  readonly #closables: Closable[];
  /** Built-in enhanced authentication methods (SCRAM-SHA-256 with a password file). */
  readonly enhancedAuth: Record<string, EnhancedAuthenticator>;

  constructor(
    options: SecurityOptions,
    authenticators: Authenticator[],
    authorizers: Authorizer[],
    closables: Closable[] = [],
    enhancedAuth: Record<string, EnhancedAuthenticator> = {},
  ) {
    this.options = options;
    this.#authenticators = authenticators;
    this.#authorizers = authorizers;
    this.#closables = closables;
    this.enhancedAuth = enhancedAuth;
  }

  /** Builds the chain: hooks first, then the password file, then JWT; the hook authorizer before the ACL file. */
  static async create(
    options: SecurityOptions,
    hooks: { authenticate?: Authenticator | undefined; authorize?: Authorizer | undefined },
    log: Logger,
  ): Promise<Security> {
    const authenticators: Authenticator[] = [];
    const authorizers: Authorizer[] = [];
    const closables: Closable[] = [];
    const enhancedAuth: Record<string, EnhancedAuthenticator> = {};
    if (hooks.authenticate !== undefined) authenticators.push(hooks.authenticate);
    if (options.passwordFile !== undefined) {
      const { PasswordFile } = await import('./passwords.js');
      const file = await PasswordFile.load(options.passwordFile);
      file.watch(
        () => log.info({ file: options.passwordFile }, 'password file reloaded'),
        (err: unknown) => log.error({ err, file: options.passwordFile }, 'password file not reloaded; keeping the previous one'),
      );
      authenticators.push(file.authenticator());
      closables.push(file);
      const { scramSha256, SCRAM_SHA_256 } = await import('./scram.js');
      enhancedAuth[SCRAM_SHA_256] = scramSha256(file);
    }
    if (options.jwt !== undefined) {
      const { jwtAuthenticator } = await import('./jwt.js');
      authenticators.push(await jwtAuthenticator(options.jwt));
    }
    if (hooks.authorize !== undefined) authorizers.push(hooks.authorize);
    if (options.aclFile !== undefined) {
      const { AclFile } = await import('./acl.js');
      const acl = await AclFile.load(options.aclFile);
      acl.watch(
        () => log.info({ file: options.aclFile }, 'ACL file reloaded'),
        (err: unknown) => log.error({ err, file: options.aclFile }, 'ACL file not reloaded; keeping the previous one'),
      );
      authorizers.push(acl.authorizer());
      closables.push(acl);
    }
    return new Security(options, authenticators, authorizers, closables, enhancedAuth);
  }

  /** Whether any authenticator (hook, password file, JWT) sees CONNECT requests. */
  get authenticates(): boolean {
    return this.#authenticators.length > 0;
  }

  get authorizes(): boolean {
    return this.#authorizers.length > 0;
  }

  /**
   * Authenticates a CONNECT. `loopback` tells whether the listener only accepts local clients
   * (the default anonymous policy depends on it). Synchronous unless a hook is asynchronous.
   */
  authenticate(req: AuthenticationRequest, loopback: boolean): AuthenticationResult | Promise<AuthenticationResult> {
    return this.#ask(req, loopback, 0);
  }

  #ask(req: AuthenticationRequest, loopback: boolean, i: number): AuthenticationResult | Promise<AuthenticationResult> {
    for (; i < this.#authenticators.length; i++) {
      const r = this.#authenticators[i]!(req);
      if (isPromise(r)) {
        const next = i + 1;
        return r.then((v) => (v !== undefined ? v : this.#ask(req, loopback, next)));
      }
      if (r !== undefined) return r;
    }
    return this.#undecided(req, loopback);
  }

  #undecided(req: AuthenticationRequest, loopback: boolean): AuthenticationResult {
    const cn = req.certificate?.subjectCN;
    if (this.options.certificateAuth === true && cn !== undefined) return { ok: true, username: cn };
    const anonymous = this.options.allowAnonymous ?? loopback;
    if (!anonymous) return { ok: false, reasonCode: ReasonCode.NotAuthorized, reason: 'authentication required' };
    // Without any authenticator a client's user name is taken as given (nobody could verify it);
    // once authenticators exist, an unverified name is no identity.
    return { ok: true, username: this.#authenticators.length === 0 ? req.username : undefined };
  }

  /** Authorizes one action; the first authorizer with an opinion decides; none → allowed. */
  authorize(req: AuthorizationRequest): Decision | Promise<Decision> {
    return this.#authorizeFrom(req, 0);
  }

  #authorizeFrom(req: AuthorizationRequest, i: number): Decision | Promise<Decision> {
    for (; i < this.#authorizers.length; i++) {
      const r = this.#authorizers[i]!(req);
      if (isPromise(r)) {
        const next = i + 1;
        return r.then((v) => (v !== undefined ? toDecision(v) : this.#authorizeFrom(req, next)));
      }
      if (r !== undefined) return toDecision(r);
    }
    return ALLOW;
  }

  close(): void {
    for (const c of this.#closables) c.close();
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export { isPromise };
