/**
 * TLS material for the `tls` and `wss` listeners: reads the PEM files, checks them early (with
 * errors that name the file at fault), builds a `tls.SecureContext`, and reloads it when the files
 * change (fs.watch, debounced) or on demand (SIGHUP). A bad reload keeps the previous context.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, watch as fsWatch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket, type TlsOptions } from 'node:tls';

/** Paths of the PEM files and the TLS policy of a listener. */
export interface TlsFiles {
  /** Server certificate (PEM), optionally followed by its intermediate chain. */
  cert: string;
  /** Private key of the certificate (PEM). */
  key: string;
  /** CA bundle (PEM) that client certificates are verified against (required with `requestCert`). */
  ca?: string;
  /** Passphrase of an encrypted private key. */
  passphrase?: string;
  /** Ask clients for a certificate (mutual TLS). */
  requestCert?: boolean;
  /** Refuse clients whose certificate does not verify. Default true when `requestCert`. */
  rejectUnauthorized?: boolean;
  /** Lowest protocol version accepted. Default 'TLSv1.2'. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export type TlsFileRole = 'cert' | 'key' | 'ca';

/** A TLS configuration problem, naming the file at fault when there is one. */
export class TlsFileError extends Error {
  override readonly name = 'TlsFileError';
  constructor(
    message: string,
    readonly file?: string,
    readonly role?: TlsFileRole,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What a successful (re)load installed, for logs. */
export interface TlsCertificateSummary {
  subject: string;
  issuer: string;
  serialNumber: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

/** Identity taken from a verified peer certificate (the shape of ConnectionInfo['certificate']). */
export interface CertificateIdentity {
  subjectCN?: string;
  subjectAltNames?: string[];
}

export interface TlsContextSourceOptions {
  /** Called after every successful reload (not for the initial load). */
  onReload?: (summary: TlsCertificateSummary) => void;
  /** Called when a reload fails; the previous context stays in use. */
  onError?: (err: TlsFileError) => void;
  /** Quiet time after the last file event before a watched change is reloaded. Default 250 ms. */
  debounceMs?: number;
}

interface Loaded {
  options: SecureContextOptions;
  context: SecureContext;
  summary: TlsCertificateSummary;
  /** Digest of the file bytes, to skip watch events that changed nothing. */
  fingerprint: string;
}

const ROLE_NAMES: Record<TlsFileRole, string> = { cert: 'certificate', key: 'private key', ca: 'CA bundle' };

function readPem(path: string, role: TlsFileRole): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'is not readable (permission denied)'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot be read (${(err as Error).message})`;
    throw new TlsFileError(`TLS ${ROLE_NAMES[role]} file ${path} ${why}`, path, role, { cause: err });
  }
  if (!data.includes('-----BEGIN ')) {
    throw new TlsFileError(`TLS ${ROLE_NAMES[role]} file ${path} holds no PEM data (no "-----BEGIN" line)`, path, role);
  }
  return data;
}

function load(files: TlsFiles): Loaded {
  if (files.requestCert && files.ca === undefined) {
    // Without a CA of its own Node would verify client certificates against the public roots: anyone
    // holding any publicly issued certificate would pass, with a CN of their choosing.
    throw new TlsFileError('TLS requestCert (mutual TLS) needs a ca file to verify client certificates against');
  }
  const cert = readPem(files.cert, 'cert');
  const key = readPem(files.key, 'key');
  const ca = files.ca === undefined ? undefined : readPem(files.ca, 'ca');

  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError(`TLS certificate file ${files.cert} does not hold a valid certificate: ${(err as Error).message}`, files.cert, 'cert', {
      cause: err,
    });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(files.passphrase === undefined ? { key } : { key, passphrase: files.passphrase });
  } catch (err) {
    const hint = files.passphrase === undefined ? ' (is it encrypted? set a passphrase)' : ' (wrong passphrase?)';
    throw new TlsFileError(`TLS private key file ${files.key} cannot be read as a private key${hint}: ${(err as Error).message}`, files.key, 'key', {
      cause: err,
    });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsFileError(`TLS private key file ${files.key} does not match the certificate in ${files.cert}`, files.key, 'key');
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsFileError(`TLS CA bundle file ${files.ca} does not hold a valid certificate: ${(err as Error).message}`, files.ca, 'ca', { cause: err });
    }
  }

  const options: SecureContextOptions = { cert, key, minVersion: files.minVersion ?? 'TLSv1.2' };
  if (ca !== undefined) options.ca = ca;
  if (files.passphrase !== undefined) options.passphrase = files.passphrase;
  let context: SecureContext;
  try {
    context = createSecureContext(options);
  } catch (err) {
    const which = [`cert ${files.cert}`, `key ${files.key}`, ...(files.ca === undefined ? [] : [`ca ${files.ca}`])].join(', ');
    throw new TlsFileError(`TLS files (${which}) were refused by OpenSSL: ${(err as Error).message}`, undefined, undefined, { cause: err });
  }
  return {
    options,
    context,
    summary: {
      subject: x509.subject,
      issuer: x509.issuer,
      serialNumber: x509.serialNumber,
      validFrom: x509.validFrom,
      validTo: x509.validTo,
      fingerprint256: x509.fingerprint256,
    },
    fingerprint: digest([cert, key, ca ?? Buffer.alloc(0)]),
  };
}

function digest(parts: Buffer[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(String(p.length)).update(':').update(p);
  return h.digest('hex');
}

function asTlsFileError(err: unknown): TlsFileError {
  return err instanceof TlsFileError ? err : new TlsFileError(`TLS reload failed: ${(err as Error).message}`, undefined, undefined, { cause: err });
}

/**
 * The current TLS material of one set of files. The constructor loads and checks the files and
 * throws a TlsFileError when they are unusable; later reloads never throw and keep the previous
 * context when the new files are bad.
 */
export class TlsContextSource {
  readonly files: Readonly<TlsFiles>;
  #loaded: Loaded;
  readonly #reloadListeners = new Set<(summary: TlsCertificateSummary) => void>();
  readonly #errorListeners = new Set<(err: TlsFileError) => void>();
  readonly #debounceMs: number;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(files: TlsFiles, options: TlsContextSourceOptions = {}) {
    this.files = { ...files };
    this.#loaded = load(this.files);
    this.#debounceMs = options.debounceMs ?? 250;
    if (options.onReload) this.#reloadListeners.add(options.onReload);
    if (options.onError) this.#errorListeners.add(options.onError);
  }

  /** The secure context built from the last good files. */
  get context(): SecureContext {
    return this.#loaded.context;
  }

  /** The certificate currently served. */
  get certificate(): TlsCertificateSummary {
    return this.#loaded.summary;
  }

  /** Options for tls.createServer / https.createServer (and server.setSecureContext) from the last good files. */
  serverOptions(): TlsOptions {
    const requestCert = this.files.requestCert ?? false;
    return {
      ...this.#loaded.options,
      requestCert,
      rejectUnauthorized: this.files.rejectUnauthorized ?? requestCert,
    };
  }

  /** Adds a listener for successful reloads (e.g. to reinstall the context, or to log); returns its remover. */
  onReload(listener: (summary: TlsCertificateSummary) => void): () => void {
    this.#reloadListeners.add(listener);
    return () => this.#reloadListeners.delete(listener);
  }

  /** Adds a listener for failed reloads; returns its remover. */
  onError(listener: (err: TlsFileError) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /**
   * Rereads the files now (e.g. on SIGHUP). On success installs the new context, tells the reload
   * listeners and returns true; on failure keeps the old context, tells the error listeners and
   * returns false.
   */
  reload(): boolean {
    return this.#reload(false);
  }

  #reload(onlyIfChanged: boolean): boolean {
    let next: Loaded;
    try {
      next = load(this.files);
    } catch (err) {
      const e = asTlsFileError(err);
      for (const f of [...this.#errorListeners]) f(e);
      return false;
    }
    if (onlyIfChanged && next.fingerprint === this.#loaded.fingerprint) return true;
    this.#loaded = next;
    for (const f of [...this.#reloadListeners]) f(next.summary);
    return true;
  }

  /**
   * Watches the directories holding the files (so replacing a file by rename, or a Kubernetes-style
   * symlink swap, is seen as well as an in-place write) and reloads after `debounceMs` of quiet.
   * Events that leave the files' bytes unchanged do not reload. Idempotent.
   */
  watch(): void {
    if (this.#watchers.length > 0) return;
    const paths = [this.files.cert, this.files.key, ...(this.files.ca === undefined ? [] : [this.files.ca])].map((p) => resolve(p));
    const byDir = new Map<string, Set<string>>();
    for (const p of paths) {
      const names = byDir.get(dirname(p)) ?? new Set<string>();
      names.add(basename(p));
      byDir.set(dirname(p), names);
    }
    for (const [dir, names] of byDir) {
      let watcher: FSWatcher;
      try {
        watcher = fsWatch(dir, { persistent: false }, (_event, filename) => {
          // Unknown filename (some platforms) or a "..data"-style swap: check; else only our files.
          const name = filename === null ? undefined : String(filename);
          if (name === undefined || names.has(name) || name.startsWith('..')) this.#schedule();
        });
      } catch (err) {
        const e = new TlsFileError(`cannot watch TLS directory ${dir}: ${(err as Error).message}`, dir, undefined, { cause: err });
        for (const f of [...this.#errorListeners]) f(e);
        continue;
      }
      watcher.on('error', (err) => {
        const e = new TlsFileError(`watching TLS directory ${dir} failed: ${err.message}`, dir, undefined, { cause: err });
        for (const f of [...this.#errorListeners]) f(e);
      });
      this.#watchers.push(watcher);
    }
  }

  /** Stops watching (pending debounced reloads are dropped). */
  unwatch(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#reload(true);
    }, this.#debounceMs);
    this.#timer.unref();
  }
}

/**
 * Subject CN and subjectAltName entries of the peer's certificate, only when the handshake
 * verified it (`socket.authorized`); otherwise undefined. A subject with several CNs yields no
 * `subjectCN` (ambiguous identity). SAN entries keep Node's type prefix: 'DNS:host',
 * 'IP Address:127.0.0.1', 'email:a@b', 'URI:spiffe://…'.
 */
export function certificateIdentity(socket: TLSSocket): CertificateIdentity | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate(false);
  // An empty object when the peer sent none.
  if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return undefined;
  const identity: CertificateIdentity = {};
  const cn: unknown = (cert.subject as Record<string, unknown> | undefined)?.CN;
  if (typeof cn === 'string') identity.subjectCN = cn;
  if (typeof cert.subjectaltname === 'string' && cert.subjectaltname !== '') {
    identity.subjectAltNames = splitAltNames(cert.subjectaltname);
  }
  return identity;
}

/**
 * Splits Node's subjectaltname string ('DNS:a, IP Address:1.2.3.4'). Values with special
 * characters come JSON-quoted ('DNS:"a, b"'); those are unquoted.
 */
export function splitAltNames(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      // JSON string: find the closing quote, skipping escapes.
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        value = text.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const comma = text.indexOf(', ', j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    out.push(`${type}:${value}`);
    // Skip the ", " separator.
    i = text.startsWith(', ', j) ? j + 2 : j;
  }
  return out;
}
