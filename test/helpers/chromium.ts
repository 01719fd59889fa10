/** Debian's Chromium for the browser tests (playwright-core), gated like the other peers. */
import { chromium, type Browser } from 'playwright-core';
import { missingExecutable } from './peers.js';

export const CHROMIUM = '/usr/bin/chromium';

/** undefined when Chromium is installed, else why not (for peerGate). */
export const missingChromium = (): string | undefined => missingExecutable(CHROMIUM);

/** Headless, no sandbox, nothing from the network; generous start-up timeout (Chromium starts slowly on a loaded 2-core machine). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 90_000,
  });
}
