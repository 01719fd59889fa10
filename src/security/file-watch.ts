/**
 * Reloading a security file (password file, ACL file) when it changes on disk.
 *
 * The directory holding the file is watched rather than the file itself: editors and
 * `setPassword` replace the file by renaming a temporary file over it, and a watch on the old
 * inode would never fire again. Events are debounced, reloads never overlap, and a reload that
 * fails leaves the caller's previous contents in place and reports the error.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface FileWatchOptions {
  /** Quiet time after the last change event before reloading; default 100 ms. */
  debounceMs?: number;
}

export class FileReloader {
  readonly #reload: () => Promise<void>;
  readonly #onReload: (() => void) | undefined;
  readonly #onError: (err: Error) => void;
  readonly #debounceMs: number;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #again = false;
  #closed = false;

  /**
   * `reload` reads and parses the file and swaps in the new contents only when it succeeds; it
   * rejects to report an error.
   */
  constructor(
    path: string,
    reload: () => Promise<void>,
    onReload: (() => void) | undefined,
    onError: ((err: Error) => void) | undefined,
    options: FileWatchOptions = {},
  ) {
    this.#reload = reload;
    this.#onReload = onReload;
    this.#onError = onError ?? ((err) => process.emitWarning(err.message, { code: 'COURIER_SECURITY_FILE_RELOAD' }));
    this.#debounceMs = options.debounceMs ?? 100;
    const name = basename(path);
    this.#watcher = watch(dirname(path), (_event, filename) => {
      // Some platforms do not report the name; then any change in the directory counts.
      if (filename === null || filename === name) this.#schedule();
    });
    this.#watcher.on('error', (err) => this.#onError(err));
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, this.#debounceMs);
  }

  async #run(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    try {
      do {
        this.#again = false;
        try {
          await this.#reload();
          if (!this.#closed) this.#onReload?.();
        } catch (err) {
          if (!this.#closed) this.#onError(err instanceof Error ? err : new Error(String(err)));
        }
      } while (this.#again && !this.#closed);
    } finally {
      this.#running = false;
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
