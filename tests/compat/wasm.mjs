// OpenIM's Go SDK core, compiled to WebAssembly (@openim/wasm-client-sdk, unmodified), in
// headless Chromium, against a running jetim. The Go core speaks the gob protocol that every
// native OpenIM app (iOS, Android, Flutter, Electron) uses, so this checks jetim's gob
// envelopes end to end with the real thing.
//
//   node wasm.mjs --api http://127.0.0.1:10002 --ws ws://127.0.0.1:10001 [--chromium PATH]
//
// The page is served from this process on localhost: the SDK's ES module and its worker
// from the package's lib/, and openIM.wasm, sql-wasm.wasm and wasm_exec.js from its assets/.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { longText } from './text.mjs';

const { values: options } = parseArgs({
  options: {
    api: { type: 'string', default: 'http://127.0.0.1:10002' },
    ws: { type: 'string', default: 'ws://127.0.0.1:10001' },
    secret: { type: 'string', default: 'openIM123' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});

const WAIT_MS = 20_000;
const here = path.dirname(fileURLToPath(import.meta.url));
const sdkRoot = path.join(here, 'node_modules', '@openim', 'wasm-client-sdk');
const run = `w${Date.now().toString(36)}`;
let operations = 0;

// ---- The page ----

const PAGE = `<!doctype html>
<html><head>
<script src="/wasm_exec.js"></script>
<script type="module">
  import { getSDK, CbEvents } from '/sdk/index.es.js';
  window.IM = { getSDK, CbEvents };
  window.ready = true;
</script>
</head><body>jetim compat</body></html>`;

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

function servePage() {
  const server = http.createServer((request, response) => {
    const { pathname } = new URL(request.url, 'http://localhost');
    const isolated = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
    };
    if (pathname === '/') {
      response.writeHead(200, { 'Content-Type': 'text/html', ...isolated });
      response.end(PAGE);
      return;
    }
    const file = pathname.startsWith('/sdk/')
      ? path.join(sdkRoot, 'lib', pathname.slice('/sdk/'.length))
      : path.join(sdkRoot, 'assets', pathname.slice(1));
    if (!file.startsWith(sdkRoot) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404);
      response.end();
      return;
    }
    response.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', ...isolated });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---- REST, as an admin tool would call it ----

async function rest(pathname, body, token) {
  const headers = { 'Content-Type': 'application/json', operationID: `compat-${run}-${++operations}` };
  if (token) headers.token = token;
  const response = await fetch(options.api + pathname, { method: 'POST', headers, body: JSON.stringify(body) });
  const reply = await response.json();
  if (reply.errCode !== 0) throw new Error(`${pathname}: ${JSON.stringify(reply)}`);
  return reply.data;
}

/** How many gob connections the gateway has opened (jetim's /metrics, `jetim all`). */
async function gobConnections() {
  const text = await (await fetch(`${options.api}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('jetim_gateway_connections_opened_total') && line.includes('envelope="gob"'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

// ---- One browser context per user ----

class BrowserClient {
  constructor(userID, page) {
    this.userID = userID;
    this.page = page;
    this.console = [];
    page.on('console', (message) => this.console.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => this.console.push(`pageerror: ${error.message}`));
  }

  static async open(browser, origin, userID, token) {
    const context = await browser.newContext();
    const client = new BrowserClient(userID, await context.newPage());
    await client.page.goto(`${origin}/`);
    await client.page.waitForFunction(() => window.ready === true);
    const outcome = await client.page.evaluate(
      async ({ userID, token, api, ws, wait }) => {
        const sdk = window.IM.getSDK();
        window.sdk = sdk;
        window.events = [];
        for (const event of Object.values(window.IM.CbEvents)) {
          sdk.on(event, (payload) => window.events.push({ event, data: payload?.data }));
        }
        const synced = new Promise((resolve) => sdk.on(window.IM.CbEvents.OnSyncServerFinish, () => resolve('synced')));
        try {
          await sdk.login({ userID, token, platformID: 5, apiAddr: api, wsAddr: ws });
        } catch (error) {
          return `login failed: ${JSON.stringify(error)}`;
        }
        return Promise.race([synced, new Promise((resolve) => setTimeout(() => resolve('no OnSyncServerFinish'), wait))]);
      },
      { userID, token, api: options.api, ws: options.ws, wait: WAIT_MS },
    );
    assert.equal(outcome, 'synced', `${userID} logs in`);
    return client;
  }

  async send(text, { to = '', group = '' } = {}) {
    return this.page.evaluate(
      async ({ text, to, group }) => {
        const message = (await window.sdk.createTextMessage(text)).data;
        return (await window.sdk.sendMessage({ recvID: to, groupID: group, message })).data;
      },
      { text, to, group },
    );
  }

  async createGroup(name, memberUserIDs) {
    return this.page.evaluate(
      async ({ name, memberUserIDs, owner }) =>
        (await window.sdk.createGroup({ memberUserIDs, ownerUserID: owner, groupInfo: { groupName: name, groupType: 2 } })).data,
      { name, memberUserIDs, owner: this.userID },
    );
  }

  /** Waits until a message with this text has been reported by OnRecvNewMessages. */
  async receives(text) {
    const handle = await this.page.waitForFunction(
      (text) =>
        window.events
          .filter((entry) => entry.event === 'OnRecvNewMessages')
          .flatMap((entry) => entry.data)
          .find((message) => message.textElem?.content === text) ?? null,
      text,
      { timeout: WAIT_MS },
    );
    return handle.jsonValue();
  }
}

// ---- Scenarios ----

const server = await servePage();
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: options.chromium, args: ['--no-sandbox'] });
const clients = [];
let failed = 0;

async function scenario(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name} (${Date.now() - started} ms)\n     ${error.stack ?? error}`);
    for (const client of clients) {
      console.log(`     ${client.userID}'s browser console:`);
      for (const line of client.console.slice(-80)) console.log(`     | ${line.slice(0, 600)}`);
    }
  }
}

try {
  const admin = (await rest('/auth/get_admin_token', { secret: options.secret, userID: 'imAdmin' })).token;
  const [ann, ben] = [`wann-${run}`, `wben-${run}`];
  await rest('/user/user_register', { users: [ann, ben].map((userID) => ({ userID, nickname: userID.split('-')[0] })) }, admin);
  const token = async (userID) => (await rest('/auth/get_user_token', { userID, platformID: 5 }, admin)).token;
  let a;
  let b;

  await scenario('G1. the Go core (wasm, gob) logs in and finishes sync in two browsers', async () => {
    const before = await gobConnections();
    a = await BrowserClient.open(browser, origin, ann, await token(ann));
    clients.push(a);
    b = await BrowserClient.open(browser, origin, ben, await token(ben));
    clients.push(b);
    assert.ok((await gobConnections()) >= before + 2, 'both connected with the gob envelope');
  });

  await scenario('G2. 1:1 both ways over gob', async () => {
    assert.ok(a && b, 'both logged in');
    await a.send('hello over gob', { to: ben });
    const received = await b.receives('hello over gob');
    assert.equal(received.sendID, ann);
    assert.equal(received.sessionType, 1);
    await b.send('and back', { to: ann });
    await a.receives('and back');
  });

  await scenario('G3. a group message over gob', async () => {
    assert.ok(a && b, 'both logged in');
    const group = await a.createGroup('gophers', [ben]);
    assert.ok(group.groupID, 'the group has an ID');
    await a.send('hello gophers', { group: group.groupID });
    const received = await b.receives('hello gophers');
    assert.equal(received.groupID, group.groupID);
    assert.equal(received.sessionType, 3);
  });

  await scenario('G4. a long message over gob arrives whole (the gateway writes it from its own buffer)', async () => {
    assert.ok(a && b, 'both logged in');
    const long = longText(20_000);
    await a.send(long, { to: ben });
    await b.receives(long);
  });
} finally {
  await browser.close();
  server.close();
}
console.log(failed ? `compat (wasm): ${failed} scenarios failed` : 'compat (wasm): all scenarios passed');
process.exit(failed ? 1 : 0);
