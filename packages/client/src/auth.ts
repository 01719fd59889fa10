/**
 * MQTT 5.0 enhanced authentication (§4.12), the client's side: each AUTH 0x18 (Continue
 * authentication) from the server is answered with the `auth` option's step; re-authentication
 * sends AUTH 0x19 and settles at the server's AUTH 0x00, or with the error that ended it.
 */
import type { AuthPacket, Properties } from '../../../src/protocol/packets.js';
import { ClientError } from './errors.js';
import { encodePayload } from './packets.js';
import type { EnhancedAuth } from './types.js';

const CONTINUE = 0x18;
const REAUTHENTICATE = 0x19;

/** What the authenticator needs of the connection lifecycle. */
export interface AuthLink {
  readonly state: string;
  readonly epoch: number;
  write(packet: AuthPacket): void;
  /** Tears the connection down (a protocol error by the server, or a step that threw). */
  drop(): void;
}

export class Authenticator {
  readonly #auth: EnhancedAuth | undefined;
  readonly #link: AuthLink;
  #reauth: { promise: Promise<void>; resolve(): void; reject(e: Error): void } | undefined;

  constructor(auth: EnhancedAuth | undefined, link: AuthLink) {
    this.#auth = auth;
    this.#link = link;
  }

  /** An AUTH from the server. */
  received(p: AuthPacket): void {
    const a = this.#auth;
    const code = p.reasonCode ?? 0;
    // AUTH only with the method of the CONNECT [MQTT-4.12.0-5]; anything else ends the connection.
    if (a === undefined || p.properties?.authenticationMethod !== a.method) return this.#link.drop();
    const data = p.properties?.authenticationData;
    if (code === 0) {
      a.done?.(data);
      const r = this.#reauth;
      this.#reauth = undefined;
      r?.resolve();
      return;
    }
    if (code !== CONTINUE) return this.#link.drop();
    const epoch = this.#link.epoch;
    Promise.resolve()
      .then(() => a.step(data))
      .then(
        (answer) => {
          if (this.#link.epoch === epoch) this.#send(CONTINUE, answer);
        },
        (e: unknown) => {
          this.failed(e instanceof Error ? e : new Error(String(e)));
          if (this.#link.epoch === epoch) this.#link.drop();
        },
      );
  }

  reauthenticate(): Promise<void> {
    const a = this.#auth;
    if (a === undefined) return Promise.reject(new ClientError('UNSUPPORTED', 'no enhanced authentication configured (the auth option)'));
    if (this.#link.state !== 'connected') return Promise.reject(new ClientError('OFFLINE', 'not connected'));
    if (this.#reauth !== undefined) return this.#reauth.promise;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#reauth = { promise, resolve, reject };
    this.#send(REAUTHENTICATE, a.initial?.());
    return promise;
  }

  /** The exchange cannot finish (connection lost, refused, client closed). */
  failed(e: Error): void {
    const r = this.#reauth;
    this.#reauth = undefined;
    r?.reject(e);
  }

  #send(reasonCode: number, data: Parameters<typeof encodePayload>[0] | undefined): void {
    const properties: Properties = { authenticationMethod: this.#auth!.method };
    if (data !== undefined) properties.authenticationData = encodePayload(data);
    this.#link.write({ type: 'auth', reasonCode, properties });
  }
}
