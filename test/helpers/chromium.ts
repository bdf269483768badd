// Debian's Chromium, driven by playwright-core, as every browser test launches it.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { expect } from "vitest";

const CHROMIUM = "/usr/bin/chromium"; // installed by test/browser/ensure-chromium.mjs (npm pretest)

/** Headless Chromium without the background traffic (updates, sync, QUIC) a test has no use for. */
export function launchChromium(): Promise<Browser> {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: run node test/browser/ensure-chromium.mjs`).toBe(true);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
