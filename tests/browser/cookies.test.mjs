// The original's promise through a real browser's cookie jar: a page on another port of
// localhost (another origin, same site) embeds the badge; three loads within the cookie window
// count once, and with the window at 0 they count three times. The Referer decides the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { get, launchBrowser, startServer } from './harness.mjs';

/** A static page on localhost:<port> whose only content is the counter's badge. */
async function startSite(counterPort) {
  const site = http.createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(`<!doctype html><title>a blog post</title><p>Post.</p>
<img id="badge" src="http://localhost:${counterPort}/count/tag.svg" alt="hits">`);
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  return { port: site.address().port, close: () => new Promise((resolve) => site.close(resolve)) };
}

async function loadThreeTimes(window) {
  const server = await startServer(['--cookie-window-secs', String(window)]);
  const site = await startSite(server.port);
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const badgeLoads = [];
    browser.context.on('response', (response) => {
      if (response.url().includes('/count/tag.svg')) badgeLoads.push(response.status());
    });
    for (let load = 0; load < 3; load++) {
      // A fresh navigation each time (a fragment-only change would not reload the page).
      await page.goto(`http://localhost:${site.port}/post/1?from=feed&load=${load}`);
      await page.waitForFunction(() => {
        const img = document.getElementById('badge');
        return img.complete && img.naturalWidth > 0;
      });
    }
    // Cross-origin images get only the origin as Referer by default: the key is the site.
    const key = `localhost:${site.port}`;
    const counted = Number(await get(server.base, '/nocount?url=' + encodeURIComponent(key)));
    const page1 = Number(await get(server.base, '/nocount?url=' + encodeURIComponent(key + '/post/1')));
    assert.deepEqual(badgeLoads, [200, 200, 200], 'the browser fetched the badge on every load');
    return { counted, page1 };
  } finally {
    await browser.close();
    await site.close();
    await server.stop();
  }
}

test('three loads within the cookie window count once', async () => {
  const { counted, page1 } = await loadThreeTimes(60);
  assert.equal(counted, 1);
  assert.equal(page1, 0, 'the browser sent only the origin as Referer');
});

test('with the cookie window at 0 every load counts', async () => {
  const { counted } = await loadThreeTimes(0);
  assert.equal(counted, 3);
});
