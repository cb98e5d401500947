// The back office in a real browser: login, find a payment, refund part then the rest with a
// confirmation step, read the timeline; and no page without a login.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, watchedPage, shot, API_KEY, ADMIN_PASSWORD } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

/** A paid payment made through the merchant API and the sandbox helpers. */
async function paidPayment(request, orderId, total) {
  const created = await request.post(`${server.base}/api/v1/payments`, {
    headers: { Authorization: `Bearer ${API_KEY}` },
    data: { partner_user_id: 'member-7', partner_order_id: orderId, item_name: '원두 커피 500g 외 1건', quantity: 2, total_amount: total },
  });
  assert.equal(created.status(), 201);
  const p = await created.json();
  const auth = await request.post(`${server.base}/sandbox/test/v1/payments/${p.tid}/authorize`, { data: { payment_method_type: 'CARD' } });
  const { redirect_url } = await auth.json();
  const cb = await request.get(redirect_url);
  assert.equal(cb.status(), 200);
  return p;
}

test('admin pages refuse access without login', async () => {
  const { page, problems, context } = await watchedPage(browser);
  for (const path of ['/admin', '/admin/payments', '/admin/payments/pay_x', '/admin/reconciliation']) {
    await page.goto(`${server.base}${path}`);
    assert.match(page.url(), /\/admin\/login$/, path);
  }
  const post = await page.request.post(`${server.base}/admin/payments/pay_x/refund`, { form: { amount: '1', csrf: 'x' }, maxRedirects: 0 });
  assert.equal(post.status(), 303);
  assert.equal(post.headers()['location'], '/admin/login');
  await page.getByLabel('비밀번호 (또는 API 키)').fill('wrong');
  await page.getByRole('button', { name: '로그인' }).click();
  await page.getByText('비밀번호가 올바르지 않습니다.').waitFor();
  // The 401 of a wrong password is expected here.
  assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
  await context.close();
});

test('admin finds a payment, refunds part then the rest, and the timeline shows both', async () => {
  const { page, problems, context } = await watchedPage(browser, { viewport: { width: 1280, height: 1000 } });
  await paidPayment(page.request, 'order-admin-1', 27000);
  await page.goto(`${server.base}/admin`);
  await page.getByLabel('비밀번호 (또는 API 키)').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: '로그인' }).click();
  await page.waitForURL(`${server.base}/admin`);
  await page.getByRole('heading', { name: '대시보드' }).waitFor();
  assert.match(await page.locator('main').innerText(), /27,000원/);
  await page.locator('svg[role=img]').waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'kpay_admin');
  assert.ok(session.httpOnly, 'HttpOnly session');
  assert.equal(session.sameSite, 'Strict');

  await page.getByRole('link', { name: '결제 내역 보기' }).click();
  await page.getByLabel('주문번호 / TID 검색').fill('order-admin-1');
  await page.getByRole('button', { name: '검색' }).click();
  await page.getByRole('link', { name: 'order-admin-1' }).click();
  await page.getByRole('heading', { name: /원두 커피/ }).waitFor();

  // Too much: a validation message, nothing refunded.
  await page.getByLabel('환불 금액 (원)').fill('30000');
  await page.getByLabel('환불 금액 (원)').evaluate((el) => el.removeAttribute('max'));
  await page.getByRole('button', { name: '환불하기…' }).click();
  await page.getByText(/환불 가능 금액을 넘었습니다/).waitFor();

  await page.getByLabel('환불 금액 (원)').fill('7000');
  await page.getByLabel('사유 (선택)').fill('부분 반품');
  await page.getByRole('button', { name: '환불하기…' }).click();
  await page.getByRole('heading', { name: '환불 확인' }).waitFor();
  assert.match(await page.locator('main').innerText(), /부분 환불 후 남는 금액: 20,000원/);
  await page.getByRole('button', { name: '환불 확정' }).click();
  await page.getByText('환불했습니다.').waitFor();

  await page.getByLabel('환불 금액 (원)').fill('20000');
  await page.getByRole('button', { name: '환불하기…' }).click();
  await page.getByText('남은 금액 전액을 환불합니다.').waitFor();
  await page.getByRole('button', { name: '환불 확정' }).click();
  await page.getByText('환불했습니다.').waitFor();

  const timeline = await page.locator('#timeline').innerText();
  assert.match(timeline, /refunded_part/);
  assert.match(timeline, /refunded_full/);
  assert.equal((timeline.match(/refund_requested/g) || []).length, 2);
  assert.match(await page.locator('main').innerText(), /취소 완료/);
  await shot(page, 'admin-payment');

  await page.getByRole('link', { name: '대사' }).click();
  await page.getByRole('button', { name: '지금 대사 실행' }).click();
  // The run goes on in the background: the POST answers at once with a redirect to the page,
  // which shows the run's progress and then its result (a refresh starts nothing new).
  assert.equal(new URL(page.url()).pathname, '/admin/reconciliation');
  await page.getByRole('heading', { name: '대사 결과' }).waitFor();
  assert.match(await page.locator('main').innerText(), /확인 \d+/);
  // The one 422 is the refused over-refund above, on purpose.
  assert.deepEqual(problems.filter((p) => !p.includes('422')), []);
  assert.equal(problems.length, 1);
  await context.close();
});

test('the dashboard works on a phone', async () => {
  const { page, problems, context } = await watchedPage(browser, { viewport: { width: 375, height: 812 }, isMobile: true });
  await page.goto(`${server.base}/admin/login`);
  await page.getByLabel('비밀번호 (또는 API 키)').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: '로그인' }).click();
  await page.waitForURL(`${server.base}/admin`);
  await page.goto(`${server.base}/admin/payments`);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no horizontal scrolling (${width}px)`);
  await shot(page, 'admin-mobile');
  assert.deepEqual(problems, []);
  await context.close();
});

test('admin adds a webhook endpoint, sees its deliveries and redelivers an event', async () => {
  const { page, problems, context } = await watchedPage(browser, { viewport: { width: 1280, height: 1000 } });
  await page.goto(`${server.base}/admin/login`);
  await page.getByLabel('비밀번호 (또는 API 키)').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: '로그인' }).click();
  await page.waitForURL(`${server.base}/admin`);
  await page.getByRole('link', { name: '웹훅' }).first().click();
  await page.getByRole('heading', { name: '웹훅' }).waitFor();
  // The demo shop registered its own receiver at start.
  await page.getByText('/shop/webhooks').waitFor();
  // A new endpoint: the secret is shown once.
  await page.getByLabel('URL').fill(`${server.base}/shop/webhooks`.replace('/shop/', '/shop-copy/'));
  await page.getByLabel('이벤트 (쉼표로 구분, 비우면 전체)').fill('payment.approved');
  await page.getByRole('button', { name: '추가' }).click();
  await page.getByRole('heading', { name: '엔드포인트가 추가되었습니다' }).waitFor();
  assert.match(await page.locator('#secret').innerText(), /^whsec_/);
  await page.reload();
  assert.equal(await page.locator('#secret').count(), 0, 'the secret is not shown again');
  // An unknown event type is refused with the field named, the form kept.
  await page.getByLabel('URL').fill('http://127.0.0.1:9/hooks');
  await page.getByLabel('이벤트 (쉼표로 구분, 비우면 전체)').fill('payment.nope');
  await page.getByRole('button', { name: '추가' }).click();
  await page.getByText(/invalid events/).waitFor();

  // A payment: its event reaches the shop's receiver; the event page lists every attempt.
  await paidPayment(page.request, 'order-hooks-1', 12000);
  await page.goto(`${server.base}/admin/webhooks`);
  await page.getByRole('link', { name: /\/shop\/webhooks$/ }).click();
  await page.getByRole('heading', { name: /엔드포인트/ }).waitFor();
  for (let i = 0; i < 50 && (await page.getByText('전달됨').count()) === 0; i++) {
    await page.waitForTimeout(200);
    await page.reload();
  }
  await page.getByRole('link', { name: /^evt_/ }).first().click();
  await page.getByRole('heading', { name: /이벤트/ }).waitFor();
  assert.match(await page.locator('main').innerText(), /payment\.approved/);
  await page.getByRole('button', { name: '다시 보내기' }).click();
  await page.getByText('다시 보내는 중입니다').waitFor();
  // Disable and enable the copy; rotating shows a new secret once.
  await page.goto(`${server.base}/admin/webhooks`);
  const row = page.getByRole('row', { name: /shop-copy/ });
  await row.getByRole('button', { name: '중지' }).click();
  await page.getByText('중지했습니다').waitFor();
  await page.getByRole('row', { name: /shop-copy/ }).getByRole('button', { name: '다시 사용' }).click();
  await page.getByText('다시 사용합니다').waitFor();
  await page.getByRole('row', { name: /shop-copy/ }).getByRole('button', { name: '비밀 키 교체' }).click();
  await page.getByRole('heading', { name: '새 서명 비밀 키' }).waitFor();
  await shot(page, 'admin-webhooks');
  await page.getByRole('row', { name: /shop-copy/ }).getByRole('button', { name: '삭제' }).click();
  await page.getByText('삭제했습니다').waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});
