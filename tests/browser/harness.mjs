// What the browser tests share: the real hitcounter binary on 127.0.0.1:0, and Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.HITCOUNTER_BIN || path.resolve('target/debug/hitcounter');

/** Starts the binary on a fresh data dir; resolves once it logs its address. */
export async function startServer(args = []) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hitcounter-browser-'));
  const child = spawn(BIN, ['--bind', '127.0.0.1:0', '--data-dir', dataDir, '--flush-interval-ms', '100', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no listening line: ' + log)), 20000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const match = /listening on (http:\/\/[0-9.:]+)/.exec(log);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('exited ' + code + ': ' + log)); });
  });
  return {
    base,
    port: Number(new URL(base).port),
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Chromium with a fresh profile (user data dir), as the project runs it. */
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), 'hitcounter-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-quic', '--disable-sync'],
    viewport: { width: 1100, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** GETs `path` from the server and returns the body as text. */
export async function get(base, path) {
  const response = await fetch(base + path);
  if (!response.ok) throw new Error(path + ' answered ' + response.status);
  return response.text();
}
