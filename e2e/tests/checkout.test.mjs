// The buyer's journey in a real browser: shop → KakaoPay's page (PC with QR code, or mobile) →
// back to the shop's receipt, cancelled, failed or expired page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, watchedPage, shot, checkout } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('desktop purchase through the PC page with its QR code ends on the receipt', async () => {
  const { page, problems, context } = await watchedPage(browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(`${server.base}/`);
  await shot(page, 'shop');
  await checkout(page, server.base, { chocopie: 2, mug: 1 });
  assert.match(page.url(), /\/info$/);
  await page.locator('.qr svg').waitFor();
  assert.ok(await page.locator('.qr svg').isVisible(), 'QR code visible');
  await assert.doesNotReject(page.getByText('남은 시간').waitFor());
  await shot(page, 'kakaopay-pc');
  await page.getByLabel('신용/체크카드').check();
  await page.getByRole('button', { name: '결제하기' }).click();
  await page.waitForURL(/\/orders\/ord_/);
  await page.getByRole('heading', { name: '결제가 완료되었습니다' }).waitFor();
  const text = await page.locator('main').innerText();
  assert.match(text, /18,600원/);
  assert.match(text, /초코파이 12개입/);
  assert.match(text, /부가세\s+1,691원/);
  assert.match(text, /카드/);
  assert.match(text, /A[0-9a-f]{19}/, 'the AID is shown');
  // The shop ships on its verified payment.approved webhook, not on the redirect: the receipt
  // says when that arrived (it reloads until then).
  await page.getByText(/주문 확정: 서명이 확인된 결제 승인 웹훅을 받았습니다/).waitFor({ timeout: 15000 });
  assert.match(await page.locator('#fulfilment').innerText(), /evt_[0-9a-z]+/);
  await shot(page, 'receipt');
  assert.deepEqual(problems, []);
  await context.close();
});

test('mobile purchase through the mobile page', async () => {
  const { page, problems, context } = await watchedPage(browser, {
    viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true,
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
  });
  await checkout(page, server.base, { tangerine: 1 });
  assert.match(page.url(), /\/mInfo$/);
  assert.equal(await page.locator('.qr').count(), 0, 'no QR code on the phone');
  await shot(page, 'kakaopay-mobile');
  await page.getByLabel('카카오페이머니').check();
  await page.getByRole('button', { name: '결제하기' }).click();
  await page.waitForURL(/\/orders\/ord_/);
  await page.getByRole('heading', { name: '결제가 완료되었습니다' }).waitFor();
  assert.match(await page.locator('main').innerText(), /카카오페이머니/);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no horizontal scrolling on a phone (${width}px)`);
  await shot(page, 'receipt-mobile');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the buyer cancels on KakaoPay\'s page', async () => {
  const { page, problems, context } = await watchedPage(browser);
  await checkout(page, server.base, { coffee: 1 });
  await page.getByRole('button', { name: '결제 취소' }).click();
  await page.waitForURL(/\/orders\/ord_/);
  await page.getByRole('heading', { name: '결제를 취소했습니다' }).waitFor();
  await page.getByRole('link', { name: '다시 주문하기' }).click();
  await page.waitForURL(`${server.base}/`);
  assert.deepEqual(problems, []);
  await context.close();
});

test('authentication fails', async () => {
  const { page, problems, context } = await watchedPage(browser);
  await checkout(page, server.base, { mug: 2 });
  await page.getByRole('button', { name: '비밀번호 인증 실패 (테스트)' }).click();
  await page.waitForURL(/\/orders\/ord_/);
  await page.getByRole('heading', { name: '결제에 실패했습니다' }).waitFor();
  await shot(page, 'failed');
  assert.deepEqual(problems, []);
  await context.close();
});

// KakaoPay's page expires on the sandbox clock and sends the buyer back through fail_url. That
// redirect can be forged, so the server only looks the order up: still pending at KakaoPay, the
// payment waits for the server's own 15 minutes, and the shop says it is not finished.
test('the payment expires on the sandbox clock', async () => {
  const { page, problems, context } = await watchedPage(browser);
  await checkout(page, server.base, { chocopie: 1 });
  const r = await page.request.post(`${server.base}/sandbox/test/v1/clock/advance`, { data: { seconds: 16 * 60 } });
  assert.equal(r.status(), 200);
  await page.reload();
  await page.getByRole('heading', { name: '결제 시간 만료' }).waitFor();
  await page.getByRole('link', { name: '가맹점으로 돌아가기' }).click();
  await page.waitForURL(/\/orders\/ord_/);
  await page.getByRole('heading', { name: '결제가 아직 완료되지 않았습니다' }).waitFor();
  await shot(page, 'expired-at-kakaopay');
  assert.deepEqual(problems, []);
  await context.close();
});

test('an empty cart is refused with a message, and English is available', async () => {
  const { page, problems, context } = await watchedPage(browser);
  await page.goto(`${server.base}/`);
  assert.ok(await page.getByRole('button', { name: '카카오페이로 결제' }).isDisabled(), 'nothing to pay yet');
  // Without the page's script (or with a forged form) the server itself refuses an empty cart.
  await page.evaluate(() => { document.getElementById('pay').disabled = false; });
  await page.getByRole('button', { name: '카카오페이로 결제' }).click();
  await page.getByRole('alert').filter({ hasText: '상품을 하나 이상 담아 주세요.' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/checkout', 'no redirect to KakaoPay');
  await page.goto(`${server.base}/?lang=en`);
  await page.getByRole('heading', { name: "Today's products" }).waitFor();
  await page.goto(`${server.base}/?lang=ko`);
  // The one 400 is the refused empty cart, on purpose.
  assert.deepEqual(problems.filter((p) => !p.includes('400')), []);
  await context.close();
});
