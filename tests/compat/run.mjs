// OpenIM's official JS SDK (@openim/client-sdk, unmodified) against a running jetim.
//
//   node run.mjs --api http://127.0.0.1:10002 --ws ws://127.0.0.1:10001
//
// Each scenario drives real SDK instances (several users in this one process) and checks
// what the SDK reports through its callbacks and API. The SDK's own log is kept in memory
// and printed when a scenario fails. Exits non-zero if any scenario fails.

import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';

import log from 'loglevel';
import WS from 'ws';

import { longText } from './text.mjs';

// The SDK expects a browser WebSocket, whose binary frames arrive as Blobs. Each user's
// newest socket is kept, so a scenario can cut a connection as a network would.
const sockets = new Map();
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    super(url, protocols);
    this.binaryType = 'blob';
    sockets.set(new URL(url).searchParams.get('sendID'), this);
  }
};

// The SDK logs through loglevel; keep its output for failures instead of printing it.
const sdkLog = [];
const originalFactory = log.methodFactory;
log.methodFactory = (method, level, name) => {
  const write = originalFactory(method, level, name);
  return (...args) => {
    sdkLog.push(`${method}: ${args.map(describe).join(' ')}`);
    if (sdkLog.length > 4000) sdkLog.splice(0, 1000);
    if (method === 'error' && process.env.COMPAT_VERBOSE) write(...args);
  };
};
log.setLevel('debug');
// The SDK also prints with console.info and console.log; keep that with its log too, and
// report through `say`.
const say = console.log.bind(console);
console.info = (...args) => sdkLog.push(`info: ${args.map(describe).join(' ')}`);
console.log = (...args) => sdkLog.push(`console: ${args.map(describe).join(' ')}`);

const { getSDK, CbEvents } = await import('@openim/client-sdk/lib/index.modern.mjs');

function describe(value) {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

const { values: options } = parseArgs({
  options: {
    api: { type: 'string', default: 'http://127.0.0.1:10002' },
    ws: { type: 'string', default: 'ws://127.0.0.1:10001' },
    secret: { type: 'string', default: 'openIM123' },
    only: { type: 'string' },
  },
});

const WAIT_MS = 10_000;
const WEB = 5;
const run = Date.now().toString(36);
let operations = 0;

// ---- REST, as an admin tool would call it ----

async function rest(path, body, token) {
  const headers = { 'Content-Type': 'application/json', operationID: `compat-${run}-${++operations}` };
  if (token) headers.token = token;
  const response = await fetch(options.api + path, { method: 'POST', headers, body: JSON.stringify(body) });
  const reply = await response.json();
  if (reply.errCode !== 0) throw new Error(`${path}: ${JSON.stringify(reply)}`);
  return reply.data;
}

let adminToken;
async function admin() {
  adminToken ??= (await rest('/auth/get_admin_token', { secret: options.secret, userID: 'imAdmin' })).token;
  return adminToken;
}

/** Registers fresh users (IDs unique to this run) and returns their IDs. */
async function users(...names) {
  const ids = names.map((name) => `${name}-${run}`);
  await rest('/user/user_register', { users: ids.map((userID) => ({ userID, nickname: userID.split('-')[0] })) }, await admin());
  return ids;
}

async function userToken(userID, platformID = WEB) {
  return (await rest('/auth/get_user_token', { userID, platformID }, await admin())).token;
}

// ---- An SDK instance and what it reported ----

class Client {
  constructor(userID) {
    this.userID = userID;
    this.sdk = getSDK();
    this.events = [];
    this.waiters = [];
    for (const event of Object.values(CbEvents)) {
      this.sdk.on(event, (payload) => this.record(event, payload));
    }
  }

  record(event, payload) {
    const entry = { event, data: payload?.data, errCode: payload?.errCode, errMsg: payload?.errMsg };
    this.events.push(entry);
    for (const waiter of [...this.waiters]) {
      if (waiter.event === event && waiter.test(entry.data, entry)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(entry.data);
      }
    }
  }

  /** The first `event` (already reported, or to come) whose data passes `test`. */
  waitFor(event, test = () => true, what = event) {
    const seen = this.events.find((entry) => entry.event === event && test(entry.data, entry));
    if (seen) return Promise.resolve(seen.data);
    return new Promise((resolve, reject) => {
      const waiter = { event, test, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) {
          this.waiters.splice(index, 1);
          reject(new Error(`${this.userID}: no ${what} within ${WAIT_MS} ms`));
        }
      }, WAIT_MS);
    });
  }

  /** Received messages (OnRecvNewMessages) so far. */
  received() {
    return this.events.filter((entry) => entry.event === CbEvents.OnRecvNewMessages).flatMap((entry) => entry.data);
  }

  /** Waits until a message with this text has arrived. */
  receives(text) {
    return this.waitFor(CbEvents.OnRecvNewMessages, (messages) => messages.some((m) => m.textElem?.content === text), `message "${text}"`);
  }

  async login(token, platformID = WEB) {
    const synced = this.waitFor(CbEvents.OnSyncServerFinish, () => true, 'OnSyncServerFinish');
    const failed = this.waitFor(CbEvents.OnSyncServerFailed, () => true).then((data) => {
      throw new Error(`${this.userID}: sync failed: ${describe(data)}`);
    });
    failed.catch(() => {});
    await this.sdk.login({ userID: this.userID, token, platformID, wsAddr: options.ws, apiAddr: options.api });
    await Promise.race([synced, failed]);
  }

  async send(text, { to = '', group = '' } = {}) {
    const message = (await this.sdk.createTextMessage(text)).data;
    return (await this.sdk.sendMessage({ recvID: to, groupID: group, message })).data;
  }

  async conversation(id) {
    const { data } = await this.sdk.getConversationListSplit({ offset: 0, count: 100 });
    return data.find((conversation) => conversation.conversationID === id);
  }

  async history(conversationID) {
    const { data } = await this.sdk.getAdvancedHistoryMessageList({ conversationID, count: 50, startClientMsgID: '', viewType: 0 });
    return data.messageList.filter((m) => m.textElem).map((m) => m.textElem.content);
  }

  async logout() {
    try {
      await this.sdk.logout();
    } catch {
      // Already logged out (kicked).
    }
  }
}

async function loggedIn(userID, platformID = WEB) {
  const client = new Client(userID);
  await client.login(await userToken(userID, platformID), platformID);
  return client;
}

const single = (a, b) => `si_${[a, b].sort().join('_')}`;

/** Polls `read` until `check` passes on its value (the SDK updates some state a moment after an event). */
async function eventually(read, check, what) {
  const deadline = Date.now() + WAIT_MS;
  let value;
  for (;;) {
    value = await read();
    try {
      check(value);
      return value;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${error.message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---- Scenarios ----

const scenarios = [];
const scenario = (name, body) => scenarios.push({ name, body });
const clients = [];
const track = (...made) => {
  clients.push(...made);
  return made.length === 1 ? made[0] : made;
};

scenario('1. two users log in and finish sync', async () => {
  const [ann, ben] = await users('ann', 'ben');
  const [a, b] = track(await loggedIn(ann), await loggedIn(ben));
  const self = (await a.sdk.getSelfUserInfo()).data;
  assert.equal(self.userID, ann);
  assert.equal(self.nickname, 'ann');
  assert.equal((await b.sdk.getTotalUnreadMsgCount()).data, 0);
});

scenario('2. single chat both ways: delivery, conversation list, unread counts, history', async () => {
  const [cat, dan] = await users('cat', 'dan');
  const [c, d] = track(await loggedIn(cat), await loggedIn(dan));
  await c.send('hello dan', { to: dan });
  const [received] = await d.receives('hello dan');
  assert.equal(received.sendID, cat);
  assert.equal(received.sessionType, 1);
  await d.send('hi cat', { to: cat });
  await c.receives('hi cat');
  const id = single(cat, dan);
  const dansView = await eventually(() => d.conversation(id), (row) => assert.equal(row?.unreadCount, 1), 'dan sees one unread');
  assert.equal(dansView.userID, cat);
  assert.equal(dansView.showName, 'cat');
  const catsView = await eventually(() => c.conversation(id), (row) => assert.equal(row?.unreadCount, 1), 'cat sees one unread');
  assert.equal(JSON.parse(catsView.latestMsg).textElem.content, 'hi cat');
  for (const client of [c, d]) {
    await eventually(
      () => client.history(id),
      (texts) => assert.deepEqual(texts, ['hello dan', 'hi cat']),
      `${client.userID}'s history`,
    );
  }
});

scenario('3. marking read clears the unread count, and the sender sees it read', async () => {
  const [eve, fay] = await users('eve', 'fay');
  const [e, f] = track(await loggedIn(eve), await loggedIn(fay));
  const one = await e.send('one', { to: fay });
  const two = await e.send('two', { to: fay });
  await f.receives('two');
  const id = single(eve, fay);
  await eventually(() => f.conversation(id), (row) => assert.equal(row?.unreadCount, 2), 'two unread');
  await f.sdk.markConversationMessageAsRead(id);
  await eventually(() => f.conversation(id), (row) => assert.equal(row.unreadCount, 0), 'none unread');
  assert.equal((await f.sdk.getTotalUnreadMsgCount()).data, 0);
  const [receipt] = await e.waitFor(CbEvents.OnRecvC2CReadReceipt, (data) => data[0]?.userID === fay, 'OnRecvC2CReadReceipt');
  assert.deepEqual([...receipt.msgIDList].sort(), [one.clientMsgID, two.clientMsgID].sort());
  // The server keeps it: a fresh login of fay reads the same.
  const again = track(await loggedIn(fay, 3));
  await eventually(() => again.conversation(id), (row) => assert.equal(row?.unreadCount, 0), 'none unread after a new login');
});

scenario('4. revoke: the peer sees the message revoked', async () => {
  const [gus, hal] = await users('gus', 'hal');
  const [g, h] = track(await loggedIn(gus), await loggedIn(hal));
  const sent = await g.send('oops', { to: hal });
  await h.receives('oops');
  // The sender's SDK can revoke once its own push has told it the message's seq.
  await eventually(
    () =>
      g.sdk
        .revokeMessage({ conversationID: single(gus, hal), clientMsgID: sent.clientMsgID })
        .then(() => 'revoked', (error) => describe(error)),
    (outcome) => assert.equal(outcome, 'revoked'),
    'gus revokes',
  );
  const revoked = await h.waitFor(CbEvents.OnNewRecvMessageRevoked, (data) => data.clientMsgID === sent.clientMsgID, 'OnNewRecvMessageRevoked');
  assert.equal(revoked.revokerID, gus);
  assert.equal(revoked.sourceMessageSendID, gus);
  // And its history shows the message as OpenIM shows a revoked one: contentType 2101.
  await eventually(
    async () =>
      (
        await h.sdk.getAdvancedHistoryMessageList({ conversationID: single(gus, hal), count: 20, startClientMsgID: '', viewType: 0 })
      ).data.messageList.find((m) => m.clientMsgID === sent.clientMsgID),
    (message) => assert.equal(message?.contentType, 2101),
    'the revoked message in the history',
  );
});

scenario('5. reconnect: messages sent while offline arrive by sync', async () => {
  const [ida, jon] = await users('ida', 'jon');
  const [i, j] = track(await loggedIn(ida), await loggedIn(jon));
  // Jon's connection drops, as a network drops it; his SDK reconnects on its own (after its
  // 5 s reconnect interval) and syncs the gap.
  sockets.get(jon).terminate();
  for (const text of ['while away 1', 'while away 2', 'while away 3']) {
    await i.send(text, { to: jon });
  }
  for (const text of ['while away 1', 'while away 2', 'while away 3']) await j.receives(text);
  const id = single(ida, jon);
  await eventually(() => j.conversation(id), (row) => assert.equal(row?.unreadCount, 3), 'three unread after reconnecting');
  await eventually(
    () => j.history(id),
    (texts) => assert.deepEqual(texts, ['while away 1', 'while away 2', 'while away 3']),
    'the history after reconnecting',
  );
});

scenario('6. a group of three: create, invite, kick, and messages to every member', async () => {
  const [kim, lee, max] = await users('kim', 'lee', 'max');
  const [k, l, m] = track(await loggedIn(kim), await loggedIn(lee), await loggedIn(max));
  const { data: group } = await k.sdk.createGroup({
    memberUserIDs: [lee],
    adminUserIDs: [],
    ownerUserID: kim,
    groupInfo: { groupName: 'trio', groupType: 2 },
  });
  const groupID = group.groupID;
  // A user's first group is not announced by OnJoinedGroupAdded: the SDK only compares
  // group versions once it holds a version ID, which a user without groups has none of
  // (upstream's logs start at version 0 too, which always answers "full"). The list shows it.
  const joinedBy = (client) =>
    eventually(
      async () => (await client.sdk.getJoinedGroupListPage({ offset: 0, count: 10 })).data,
      (joined) => assert.ok(joined.some((g) => g.groupID === groupID && g.groupName === 'trio')),
      `${client.userID} lists the group`,
    );
  await joinedBy(l);
  await k.sdk.inviteUserToGroup({ groupID, reason: '', userIDList: [max] });
  await joinedBy(m);
  await l.waitFor(CbEvents.OnGroupMemberAdded, (data) => data.userID === max, 'lee told max joined');

  await k.send('hello trio', { group: groupID });
  for (const client of [l, m]) {
    const [message] = await client.receives('hello trio');
    assert.equal(message.groupID, groupID);
    assert.equal(message.sessionType, 3);
  }
  const members = (await l.sdk.getGroupMemberList({ groupID, filter: 0, offset: 0, count: 10 })).data;
  assert.deepEqual(members.map((member) => member.userID).sort(), [kim, lee, max].sort());

  await k.sdk.kickGroupMember({ groupID, reason: '', userIDList: [max] });
  await m.waitFor(CbEvents.OnJoinedGroupDeleted, (data) => data.groupID === groupID, 'OnJoinedGroupDeleted for max');
  await l.waitFor(CbEvents.OnGroupMemberDeleted, (data) => data.userID === max, 'lee told max was kicked');
  await l.send('without max', { group: groupID });
  await k.receives('without max');
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(!m.received().some((message) => message.textElem?.content === 'without max'), 'max hears nothing after the kick');
});

scenario('7. force logout and a forged token', async () => {
  const [ned, ola] = await users('ned', 'ola');
  const n = track(await loggedIn(ned));
  await rest('/auth/force_logout', { userID: ned, platformID: WEB }, await admin());
  await n.waitFor(CbEvents.OnKickedOffline, () => true, 'OnKickedOffline');

  const o = track(new Client(ola));
  const forged = (await userToken(ola)).replace(/.$/, (last) => (last === 'A' ? 'B' : 'A'));
  const invalid = o.waitFor(CbEvents.OnUserTokenInvalid, () => true, 'OnUserTokenInvalid');
  o.sdk.login({ userID: ola, token: forged, platformID: WEB, wsAddr: options.ws, apiAddr: options.api }).catch(() => {});
  await invalid;
});

scenario('8. a second login on the same platform kicks the first', async () => {
  const [pat] = await users('pat');
  const first = track(await loggedIn(pat));
  track(await loggedIn(pat));
  await first.waitFor(CbEvents.OnKickedOffline, () => true, 'OnKickedOffline on the first login');
});

scenario('9. a long message arrives whole, pushed and pulled (the gateway writes it from its own buffer)', async () => {
  const [quin, rex] = await users('quin', 'rex');
  const [q, r] = track(await loggedIn(quin), await loggedIn(rex));
  const long = longText(20_000);
  await q.send(long, { to: rex });
  await r.receives(long);
  // A fresh login pulls it by sync.
  const again = track(await loggedIn(rex, 3));
  await eventually(() => again.history(single(quin, rex)), (texts) => assert.deepEqual(texts, [long]), 'the history of a fresh login');
});

// ---- Running ----

// The SDK's own promise chains may reject outside any call of ours (for instance a push
// still being handled when its client logs out); that goes to its log, and the scenarios'
// assertions decide.
process.on('unhandledRejection', (reason) => {
  sdkLog.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : describe(reason)}`);
});

let failed = 0;
let ran = 0;
for (const { name, body } of scenarios) {
  if (options.only && !name.startsWith(options.only)) continue;
  ran += 1;
  const started = Date.now();
  const logStart = sdkLog.length;
  try {
    await body();
    say(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed += 1;
    const reason = error instanceof Error ? error.stack : describe(error);
    say(`FAIL ${name} (${Date.now() - started} ms)\n     ${reason}`);
    say('     the SDK logged:');
    for (const line of sdkLog.slice(Math.max(logStart, sdkLog.length - 200))) {
      say(`     | ${line.slice(0, 600)}`);
    }
  }
  for (const client of clients.splice(0)) await client.logout();
}
say(failed ? `compat: ${failed} of ${ran} scenarios failed` : `compat: all ${ran} scenarios passed`);
process.exit(failed ? 1 : 0);
