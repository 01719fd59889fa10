/**
 * Security hooks: how the broker core asks "who is this client?" and "may it do that?". The
 * built-in password file, JWT verification and ACL file implement these same interfaces; an
 * embedding application may supply its own.
 */
import type { TransportKind } from '../transport/types.js';

/** What is known about a client when it authenticates. */
export interface AuthenticationRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  protocolVersion: 3 | 4 | 5;
  transport: TransportKind;
  /** Name of the listener that accepted the connection. */
  listener: string;
  remoteAddress: string | undefined;
  /** TLS client certificate (mTLS), when one was presented and verified. */
  certificate?: { subjectCN?: string; subjectAltNames?: string[] };
}

export type AuthenticationResult =
  | { ok: true; /** The identity ACLs and session ownership use; absent = the CONNECT user name, undefined = none. */ username?: string | undefined }
  | {
      ok: false;
      /** v5 CONNACK reason code (default 0x86 Bad User Name or Password; 0x9C/0x9D with `serverReference` to redirect). */
      reasonCode?: number;
      reason?: string;
      /** v5 Server Reference: another server to use (with reason code 0x9C Use another server or 0x9D Server moved). */
      serverReference?: string;
    };

/** Returns a result, or undefined to let the next authenticator decide. */
export type Authenticator = (req: AuthenticationRequest) => Promise<AuthenticationResult | undefined> | AuthenticationResult | undefined;

export type Action = 'publish' | 'subscribe';

export interface AuthorizationRequest {
  action: Action;
  clientId: string;
  /** The authenticated identity (see AuthenticationResult.username). */
  username: string | undefined;
  /** Topic name (publish, also for wills and retained deliveries) or topic filter (subscribe). */
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export type AuthorizationResult =
  | boolean
  | { allow: true }
  | { allow: false; /** v5 reason code for PUBACK/PUBREC/SUBACK (default 0x87 Not authorized). */ reasonCode?: number };

/** Returns a decision, or undefined to let the next authorizer decide. */
export type Authorizer = (req: AuthorizationRequest) => Promise<AuthorizationResult | undefined> | AuthorizationResult | undefined;

/** One step of an enhanced authentication exchange (MQTT 5.0 §4.12). */
export type EnhancedAuthStep =
  /** Send AUTH 0x18 (Continue authentication) with this data and wait for the client's next AUTH. */
  | { continue: true; data?: Buffer }
  /** Done: the result decides; `data` goes to the client with CONNACK (or AUTH 0x00 on re-authentication). */
  | { continue: false; result: AuthenticationResult; data?: Buffer };

/** A running exchange: `step` is called with the client's Authentication Data, first from CONNECT (or AUTH 0x19), then from each AUTH 0x18. */
export interface EnhancedAuthConversation {
  step(data: Buffer | undefined): EnhancedAuthStep | Promise<EnhancedAuthStep>;
}

/** Starts an exchange for one Authentication Method; `reauthenticate` is true for AUTH 0x19 on a live connection. */
export type EnhancedAuthenticator = (req: AuthenticationRequest & { method: string; reauthenticate: boolean }) => EnhancedAuthConversation;
