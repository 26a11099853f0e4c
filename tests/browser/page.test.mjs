// The tool page in a real browser: generator snippets, preview, copy, lookup, top sites, and no
// request to any host but the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get, launchBrowser, startServer } from './harness.mjs';

test('the tool page builds snippets, copies, looks up counts and shows top sites', async () => {
  const server = await startServer(['--cookie-window-secs', '0', '--top-refresh-secs', '1']);
  const browser = await launchBrowser();
  try {
    const { base } = server;
    for (let i = 0; i < 3; i++) await get(base, '/count?url=' + encodeURIComponent('https://lookup.example/page/'));
    for (let i = 0; i < 5; i++) await get(base, '/count?url=top.example/a');

    const requests = [];
    browser.context.on('request', (request) => requests.push(request.url()));
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    const page = await browser.context.newPage();
    await page.goto(base + '/');
    assert.equal(await page.inputValue('#url'), base + '/', 'the URL field starts with the page origin');

    // Generator: every option, then the exact snippets.
    await page.fill('#url', 'https://blog.example/post-1');
    await page.selectOption('#style', 'plastic');
    await page.fill('#label', 'views');
    await page.fill('#color', 'blue');
    await page.fill('#label-color', '333');
    await page.selectOption('#format', 'comma');
    await page.selectOption('#show', 'both');
    const target = encodeURIComponent('https://blog.example/post-1');
    const options = 'style=plastic&label=views&color=blue&labelColor=333&format=comma&show=both';
    const badge = `${base}/count/tag.svg?url=${target}&${options}`;
    await page.waitForFunction(() => {
      const img = document.getElementById('preview');
      return img.complete && img.naturalWidth > 0 && img.src.includes('style=plastic') && img.src.includes('show=both');
    });
    assert.ok(await page.$eval('#preview', (img) => img.naturalWidth) > 0, 'the preview loaded');
    assert.equal(await page.textContent('#html-snippet'), `<img src="${badge.replaceAll('&', '&amp;')}" alt="views">`);
    assert.equal(await page.textContent('#markdown-snippet'), `![views](${badge})`);
    // The JavaScript snippet brings the element it fills.
    assert.equal(await page.textContent('#js-snippet'),
      '<span id="hits"></span>\n<script>\n' +
      `fetch('${base}/count?url=${target}', { credentials: 'include' })\n` +
      '  .then((response) => response.text())\n' +
      "  .then((count) => { document.getElementById('hits').textContent = count; });\n" +
      '</script>');
    const endpoint = `${base}/count/shields.json?url=${target}&label=views&color=blue&labelColor=333&format=comma&show=both`;
    assert.equal(await page.textContent('#shields-snippet'),
      'https://img.shields.io/endpoint?url=' + encodeURIComponent(endpoint) + '&style=plastic');
    assert.ok(await page.isHidden('#referer-note'));
    assert.ok(await page.isHidden('#color-error'));
    assert.ok(await page.isHidden('#label-color-error'));

    // A colour the server would refuse: the field says so, and no snippet or preview carries it.
    await page.fill('#color', 'nope');
    await page.fill('#label-color', '12345');
    assert.ok(await page.isVisible('#color-error'));
    assert.ok(await page.isVisible('#label-color-error'));
    assert.match(await page.textContent('#color-error'), /the snippets leave it out/);
    assert.equal(await page.getAttribute('#color', 'aria-invalid'), 'true');
    const fallback = `${base}/count/tag.svg?url=${target}&style=plastic&label=views&format=comma&show=both`;
    assert.equal(await page.textContent('#html-snippet'), `<img src="${fallback.replaceAll('&', '&amp;')}" alt="views">`);
    assert.equal(await page.textContent('#markdown-snippet'), `![views](${fallback})`);
    for (const id of ['#shields-snippet', '#js-snippet']) {
      const snippet = decodeURIComponent(await page.textContent(id));
      assert.ok(!snippet.includes('nope') && !snippet.includes('12345'), id + ': ' + snippet);
    }
    const preview = decodeURIComponent(await page.getAttribute('#preview', 'src'));
    assert.ok(!preview.includes('nope') && !preview.includes('12345'), preview);
    await page.fill('#color', 'blue');
    await page.fill('#label-color', '333');
    assert.ok(await page.isHidden('#color-error'));
    assert.equal(await page.getAttribute('#color', 'aria-invalid'), 'false');
    assert.equal(await page.textContent('#markdown-snippet'), `![views](${badge})`);

    // Relying on the Referer: no url=, the referrerpolicy attribute and its note.
    await page.check('#use-referer');
    assert.equal(await page.textContent('#html-snippet'),
      `<img src="${base}/count/tag.svg?${options.replaceAll('&', '&amp;')}" alt="views" referrerpolicy="no-referrer-when-downgrade">`);
    assert.ok(await page.isVisible('#referer-note'));

    // Copy: the button says so, and the clipboard holds the snippet.
    await page.click('button[data-target="html-snippet"]');
    await page.waitForFunction(() => document.querySelector('button[data-target="html-snippet"]').textContent === 'Copied');
    const clipboard = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(clipboard, await page.textContent('#html-snippet'));

    // Lookup: a counted URL, an unknown one, and a bad one (the server's reason is shown).
    await page.fill('#lookup-url', 'https://lookup.example/page/');
    await page.click('#lookup button[type=submit]');
    await page.waitForSelector('#lookup-result:not([hidden])');
    assert.equal(await page.textContent('#lookup-key'), 'lookup.example/page');
    assert.equal(await page.textContent('#lookup-total'), '3');
    assert.equal(await page.textContent('#lookup-today'), '3');
    assert.match(await page.getAttribute('#sparkline polyline', 'points'), /^(\d+\.\d,\d+\.\d ){29}\d+\.\d,\d+\.\d$/);
    assert.match(await page.textContent('#sparkline-caption'), /^Last 30 days: 3 views; busiest \d{4}-\d\d-\d\d \(3\)$/);
    await page.fill('#lookup-url', 'never.example');
    await page.click('#lookup button[type=submit]');
    await page.waitForFunction(() => document.getElementById('lookup-key').textContent === 'never.example');
    assert.equal(await page.textContent('#lookup-total'), '0');
    await page.fill('#lookup-url', 'exa mple.com');
    await page.click('#lookup button[type=submit]');
    await page.waitForSelector('#lookup-error:not([hidden])');
    assert.equal(await page.textContent('#lookup-error'), 'bad url: the host has a character a host cannot have');

    // Top sites: ranked in the background within a second or so; the page shows them on load.
    let domains = [];
    for (let attempt = 0; attempt < 20 && !domains.includes('top.example'); attempt++) {
      await page.waitForTimeout(300);
      await page.reload();
      await page.waitForFunction(() => document.querySelector('#top-domains tbody').rows.length > 0);
      domains = await page.$$eval('#top-domains tbody tr td:first-child', (cells) => cells.map((c) => c.textContent));
    }
    assert.deepEqual(domains, ['top.example', 'lookup.example']);
    assert.ok(await page.isHidden('#top-urls'), 'the URL table is hidden by default');

    await page.screenshot({ path: 'target/browser/page.png', fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(13, 17, 23)',
      'the page follows prefers-color-scheme: dark');
    await page.screenshot({ path: 'target/browser/page-dark.png', fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
    // Keyboard: Tab reaches the first field, and Enter in the lookup field submits the lookup.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'url');
    await page.focus('#lookup-url');
    await page.keyboard.type('lookup.example/page');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#lookup-result:not([hidden])');
    assert.equal(await page.textContent('#lookup-total'), '3');
    await page.setViewportSize({ width: 375, height: 800 });
    await page.screenshot({ path: 'target/browser/page-phone.png', fullPage: true });
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= 375, 'no horizontal scrolling at a phone width: ' + scrollWidth);

    const elsewhere = requests.filter((url) => !url.startsWith(base + '/') && !url.startsWith('data:'));
    assert.deepEqual(elsewhere, [], 'nothing is requested from any host but the server');
    const own = await get(base, '/nocount?url=' + encodeURIComponent(new URL(base).host));
    assert.ok(Number(own) >= 1, 'the page counts its own views with its own badge: ' + own);
  } finally {
    await browser.close();
    await server.stop();
  }
});
