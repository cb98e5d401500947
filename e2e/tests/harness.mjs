// Starts `kpay serve` (built-in sandbox, fresh SQLite) and Debian's Chromium for the browser tests.
// Every page is watched: a console error, a failed request or a 5xx fails the test.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');
export const shots = join(here, '..', 'screenshots');
export const API_KEY = 'kpay_sk_e2e_0123456789abcdefghijkl';
export const ADMIN_PASSWORD = 'e2e-admin-password';

export async function startServer() {
  const bin = process.env.KPAY_BIN || join(root, 'target', 'debug', 'kpay');
  const dir = mkdtempSync(join(tmpdir(), 'kpay-e2e-'));
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--api-key', API_KEY, '--admin-password', ADMIN_PASSWORD,
    '--data-dir', join(dir, 'data'), '--reconcile-interval', '1'], { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kpay serve did not start: ${out}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`kpay serve exited with ${code}: ${out}`)));
  });
  return {
    base,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launch() {
  mkdirSync(shots, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** A new page whose console errors, failed requests and 5xx answers are collected in `problems`. */
export async function watchedPage(browser, options = {}) {
  const context = await browser.newContext({ locale: 'ko-KR', ...options });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A navigation that replaces a page aborts its pending polls; that is not a failure.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 500) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  return { context, page, problems };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** Fills the shop's cart and presses 카카오페이로 결제. */
export async function checkout(page, base, quantities) {
  await page.goto(`${base}/`);
  for (const [sku, q] of Object.entries(quantities)) {
    await page.getByLabel('수량').nth(['chocopie', 'tangerine', 'coffee', 'mug'].indexOf(sku)).fill(String(q));
  }
  await page.getByRole('button', { name: '카카오페이로 결제' }).click();
  await page.waitForURL(/\/sandbox\/v1\/[0-9a-f]{64}\//);
}
