/**
 * Headless Chromium for the dashboard's browser tests: Debian's /usr/bin/chromium (or
 * STARQ_CHROMIUM) driven by playwright-core — never a downloaded browser build.
 *
 * When Chromium is missing the suite FAILS with a message saying how to install it, unless
 * STARQ_SKIP_BROWSER_TESTS is set to a reason (`.ci/run` sets it only when it could not install
 * Chromium), in which case it is skipped under a title that gives the reason.
 */
import * as fs from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.STARQ_CHROMIUM || '/usr/bin/chromium';
const SKIP_REASON = (process.env.STARQ_SKIP_BROWSER_TESTS ?? '').trim();
/** Flags for a closed network: no background connections, no sandbox (root in CI). */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** `describe(name, body)` when Chromium is there; otherwise the failing or skipped stand-in above. */
export function describeBrowser(name: string, body: () => void): void {
  if (fs.existsSync(CHROMIUM)) {
    describe(name, body);
  } else if (SKIP_REASON) {
    process.stderr.write(`${name}: SKIPPED: no Chromium at ${CHROMIUM} — ${SKIP_REASON}\n`);
    describe(name, () => {
      it.skip(`skipped: no Chromium at ${CHROMIUM} — ${SKIP_REASON}`, () => undefined);
    });
  } else {
    describe(name, () => {
      it('needs Chromium', () => {
        throw new Error(
          `no Chromium at ${CHROMIUM}: install it (Debian, as root: apt-get install -y --no-install-recommends chromium; .ci/run does this) ` +
            'or set STARQ_CHROMIUM to a Chromium/Chrome binary. To skip the browser tests on purpose, set STARQ_SKIP_BROWSER_TESTS=<reason>.',
        );
      });
    });
  }
}

/** A fresh browser profile in `userDataDir`, viewport 1280×800 (the size the dashboard is built for). */
export function launchChromium(userDataDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 800 } });
}
