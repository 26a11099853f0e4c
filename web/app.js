// The tool page: builds badge snippets, looks up counts and shows the top sites.
// Everything the page inserts from the server or the user goes in as text, never as HTML.
'use strict';
(function () {
  const server = window.location.origin;
  const $ = (id) => document.getElementById(id);
  const defaults = { style: 'flat', label: 'hits', color: 'brightgreen', labelColor: 'grey', format: 'plain', show: 'total' };

  // ----- generator -----
  // The colours the server takes: a shields name, or 3 or 6 hex digits.
  const colorNames = ['brightgreen', 'green', 'yellowgreen', 'yellow', 'orange', 'red', 'blue', 'grey', 'gray',
    'lightgrey', 'lightgray', 'success', 'important', 'critical', 'informational', 'inactive'];
  const isColor = (value) => colorNames.includes(value) || /^([0-9a-f]{3}|[0-9a-f]{6})$/i.test(value);

  // A colour field's value (a leading # dropped); the default when it is empty or no colour, so
  // that no snippet carries a colour the server refuses, and the field's note says so.
  function colorOf(id, fallback) {
    const value = $(id).value.trim().replace(/^#/, '');
    const bad = value !== '' && !isColor(value);
    $(id).setAttribute('aria-invalid', String(bad));
    $(id + '-error').hidden = !bad;
    return bad || value === '' ? fallback : value;
  }

  function options() {
    return {
      url: $('url').value.trim(),
      mode: document.querySelector('input[name=mode]:checked').value,
      useReferer: $('use-referer').checked,
      style: $('style').value,
      label: $('label').value,
      color: colorOf('color', defaults.color),
      labelColor: colorOf('label-color', defaults.labelColor),
      format: $('format').value,
      show: $('show').value,
    };
  }

  // The query string: `url` (unless left out), then every option that is not its default.
  function query(o, withUrl) {
    const pairs = [];
    if (withUrl) pairs.push(['url', o.url]);
    for (const name of ['style', 'label', 'color', 'labelColor', 'format', 'show']) {
      if (o[name] !== defaults[name]) pairs.push([name, o[name]]);
    }
    return pairs.map(([name, value]) => name + '=' + encodeURIComponent(value)).join('&');
  }

  const withQuery = (path, qs) => server + path + (qs ? '?' + qs : '');
  const escapeAttr = (text) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const escapeJs = (text) => text.replace(/\\/g, '\\\\').replace(/'/g, "\\'");

  function snippets(o) {
    const badge = withQuery('/' + o.mode + '/tag.svg', query(o, !o.useReferer));
    const alt = o.label.trim() || 'hits';
    const policy = o.useReferer ? ' referrerpolicy="no-referrer-when-downgrade"' : '';
    const text = withQuery('/' + o.mode, o.useReferer ? '' : 'url=' + encodeURIComponent(o.url));
    // shields.io fetches from its own servers: no Referer, so the URL is always given.
    const endpoint = withQuery('/' + o.mode + '/shields.json', query({ ...o, style: defaults.style }, true));
    const shieldsStyle = o.style !== defaults.style ? '&style=' + o.style : '';
    return {
      html: '<img src="' + escapeAttr(badge) + '" alt="' + escapeAttr(alt) + '"' + policy + '>',
      markdown: '![' + alt.replace(/[[\]]/g, '\\$&') + '](' + badge + ')',
      // The element the script fills, then the script.
      js: '<span id="hits"></span>\n<script>\n' +
        "fetch('" + escapeJs(text) + "', { credentials: 'include' })\n" +
        '  .then((response) => response.text())\n' +
        "  .then((count) => { document.getElementById('hits').textContent = count; });\n" +
        '</script>',
      shields: 'https://img.shields.io/endpoint?url=' + encodeURIComponent(endpoint) + shieldsStyle,
      preview: withQuery('/nocount/tag.svg', query(o, true)),
    };
  }

  function update() {
    const o = options();
    const s = snippets(o);
    $('html-snippet').textContent = s.html;
    $('markdown-snippet').textContent = s.markdown;
    $('js-snippet').textContent = s.js;
    $('shields-snippet').textContent = s.shields;
    $('referer-note').hidden = !o.useReferer;
    $('preview').src = s.preview;
  }

  $('url').value = server + '/';
  $('generator').addEventListener('input', update);
  $('generator').addEventListener('change', update);
  $('generator').addEventListener('submit', (event) => event.preventDefault());
  $('preview').addEventListener('error', () => {
    $('preview-error').hidden = false;
    $('preview-error').textContent = 'The preview did not load.';
  });
  $('preview').addEventListener('load', () => { $('preview-error').hidden = true; });
  update();

  // ----- copy buttons: the Clipboard API, else a hidden textarea and execCommand -----
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (_) { /* fall back below */ }
    }
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    let copied = false;
    try { copied = document.execCommand('copy'); } catch (_) { copied = false; }
    area.remove();
    return copied;
  }

  for (const button of document.querySelectorAll('button.copy')) {
    button.addEventListener('click', async () => {
      const copied = await copyText($(button.dataset.target).textContent);
      button.textContent = copied ? 'Copied' : 'Copy failed';
      $('copy-status').textContent = copied ? 'Copied to the clipboard' : 'Could not copy: select the text and copy it';
      setTimeout(() => { button.textContent = 'Copy'; }, 2000);
    });
  }

  // ----- lookup -----
  async function getJson(path) {
    const response = await fetch(server + path, { credentials: 'same-origin' });
    const body = await response.json().catch(() => ({ error: 'the server answered ' + response.status }));
    if (!response.ok) throw new Error(body.error || 'the server answered ' + response.status);
    return body;
  }

  function drawSparkline(days) {
    const svg = $('sparkline');
    svg.replaceChildren();
    const counts = days.map((day) => day.count);
    const max = Math.max(1, ...counts);
    const step = counts.length > 1 ? 292 / (counts.length - 1) : 0;
    const points = counts.map((count, i) => (4 + step * i).toFixed(1) + ',' + (56 - 52 * count / max).toFixed(1));
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    line.setAttribute('points', points.join(' '));
    svg.appendChild(line);
    const total = counts.reduce((a, b) => a + b, 0);
    const busiest = days.reduce((best, day) => (day.count > best.count ? day : best), days[0] || { date: '', count: 0 });
    $('sparkline-caption').textContent = 'Last ' + days.length + ' days: ' + total + ' views' +
      (busiest.count > 0 ? '; busiest ' + busiest.date + ' (' + busiest.count + ')' : '');
  }

  $('lookup').addEventListener('submit', async (event) => {
    event.preventDefault();
    const qs = 'url=' + encodeURIComponent($('lookup-url').value.trim());
    $('lookup-error').hidden = true;
    try {
      const counts = await getJson('/nocount.json?' + qs);
      const history = await getJson('/nocount/history.json?' + qs + '&days=30');
      $('lookup-key').textContent = counts.url;
      $('lookup-total').textContent = String(counts.total);
      $('lookup-today').textContent = String(counts.today);
      drawSparkline(history.days);
      $('lookup-result').hidden = false;
    } catch (error) {
      $('lookup-result').hidden = true;
      $('lookup-error').textContent = error.message;
      $('lookup-error').hidden = false;
    }
  });

  // ----- top sites -----
  function fillTable(table, rows) {
    const body = table.querySelector('tbody');
    body.replaceChildren();
    if (rows.length === 0) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 2;
      cell.textContent = 'No views yet';
      return;
    }
    for (const { name, count } of rows) {
      const row = body.insertRow();
      row.insertCell().textContent = name;
      const views = row.insertCell();
      views.className = 'num';
      views.textContent = String(count);
    }
  }

  async function loadTop() {
    try {
      const top = await getJson('/nocount/top.json');
      $('top-domains').hidden = top.limits.domains === 0;
      $('top-urls').hidden = top.limits.urls === 0;
      fillTable($('top-domains'), top.domains);
      fillTable($('top-urls'), top.urls);
      $('top-note').textContent = top.updated_ms
        ? 'Ranked at ' + new Date(top.updated_ms).toLocaleTimeString() + '; loopback and private addresses are left out.'
        : 'Not ranked yet: the first ranking comes shortly after the server starts.';
    } catch (error) {
      $('top-note').textContent = 'Top sites unavailable: ' + error.message;
    }
  }
  loadTop();
})();
