// Subscriptions in a real browser: the shop's monthly coffee subscription (checkout on KakaoPay's
// page, "my subscription", a renewal a month later by the test clock, cancel at the period's end)
// and the admin's subscription page (charges, cancel now behind a confirmation).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, watchedPage, shot, API_KEY, ADMIN_PASSWORD } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

const auth = { headers: { Authorization: `Bearer ${API_KEY}` } };

async function subscribeInShop(page) {
  await page.goto(`${server.base}/`);
  await page.getByRole('button', { name: '카카오페이로 구독하기' }).click();
  await page.waitForURL(/\/info$/);
  await page.getByLabel('신용/체크카드').check();
  await page.getByRole('button', { name: '결제하기' }).click();
  await page.waitForURL(/\/subscriptions\/sub_/);
  return page.url().match(/sub_[0-9a-z]{20}/)[0];
}

test('the shop subscription: register, renew a month later, cancel at the period end', async () => {
  const { page, problems, context } = await watchedPage(browser, { viewport: { width: 1280, height: 1000 } });
  const id = await subscribeInShop(page);
  await page.getByRole('heading', { name: '나의 구독' }).waitFor();
  assert.equal(await page.locator('#sub-status').innerText(), '구독 중');
  assert.match(await page.locator('#charges').innerText(), /9,900원/);
  await shot(page, 'subscription-mine');
  // A month later (the test clock moves the server and the sandbox together).
  const moved = await page.request.post(`${server.base}/api/v1/test/clock/advance`, { ...auth, data: { seconds: 32 * 86400 } });
  assert.equal(moved.status(), 200);
  await page.reload();
  assert.equal((await page.locator('#charges li').allInnerTexts()).length, 2, 'the renewal is listed');
  await page.getByRole('button', { name: '구독 해지' }).click();
  await page.waitForURL(new RegExp(`/subscriptions/${id}$`));
  await page.getByText('해지 예정').waitFor();
  const sub = await (await page.request.get(`${server.base}/api/v1/subscriptions/${id}`, auth)).json();
  assert.equal(sub.cancel_at_period_end, true);
  assert.equal(sub.status, 'active');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the admin subscription page shows every charge and cancels now after a confirmation', async () => {
  const { page, problems, context } = await watchedPage(browser, { viewport: { width: 1280, height: 1000 } });
  const id = await subscribeInShop(page);
  await page.goto(`${server.base}/admin`);
  await page.getByLabel('비밀번호 (또는 API 키)').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: '로그인' }).click();
  await page.waitForURL(`${server.base}/admin`);
  await page.getByRole('link', { name: '정기 결제' }).click();
  await page.getByLabel('검색').fill(id);
  await page.getByRole('button', { name: '조회' }).click();
  await page.getByRole('link', { name: id }).click();
  await page.getByRole('heading', { name: '결제 시도' }).waitFor();
  const text = await page.locator('main').innerText();
  assert.match(text, /registration #1/);
  assert.match(text, /9,900원/);
  assert.match(text, /••••[0-9a-f]{4}/, 'only the SID\'s last 4');
  await shot(page, 'admin-subscription');
  await page.getByRole('link', { name: '지금 해지' }).click();
  await page.getByText('되돌릴 수 없습니다').waitFor();
  await page.getByRole('button', { name: '해지 확인' }).click();
  await page.getByText('해지되었습니다').waitFor();
  const sub = await (await page.request.get(`${server.base}/api/v1/subscriptions/${id}`, auth)).json();
  assert.equal(sub.status, 'canceled');
  assert.ok(sub.inactivated_at, 'the SID was inactivated at KakaoPay');
  assert.deepEqual(problems, []);
  await context.close();
});
