// Slack's own Node clients against `slackctl emulator`: @slack/web-api, and @slack/bolt in
// Socket Mode (@slack/socket-mode underneath) and over HTTP. The Node side of the conformance
// suite (tests/conformance/run.py is the Python side). Modules come from NODE_PATH (`.ci/run`
// installs them into target/ci-node). Prints one line per check and the tally; exits 1 on a
// failure, 3 when the modules are missing.
'use strict';

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

let WebClient, App, LogLevel;
try {
  ({ WebClient } = require('@slack/web-api'));
  ({ App, LogLevel } = require('@slack/bolt'));
} catch (e) {
  console.log(`conformance (node): Slack's Node clients are not installed (${e.message.split('\n')[0]})`);
  process.exit(3);
}

const BOT = 'xoxb-emulator-bot-token';
const APP = 'xapp-emulator-app-token';
const USER = 'xoxp-emulator-user-token';
const LIMITED = 'xoxb-emulator-limited-token';
const GENERAL = 'C0000001';
const DEADLINE_MS = 20000;

function startEmulator() {
  const bin = process.env.SLACKCTL_BIN || path.join(__dirname, '..', '..', '..', 'target', 'debug', 'slackctl');
  const proc = spawn(bin, ['emulator', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.once('line', (line) => {
      const ready = JSON.parse(line);
      resolve({ proc, apiUrl: ready.api_url, baseUrl: ready.base_url });
    });
    proc.once('exit', (code) => reject(new Error(`the emulator exited (${code})`)));
  });
}

async function control(emu, p, body, method) {
  const init = { method: method || (body === undefined ? 'GET' : 'POST') };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(emu.baseUrl + p, init);
  const text = await resp.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, probe) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    const got = await probe();
    if (got) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function botReplies(emu, text) {
  const msgs = await control(emu, `/_emulator/messages?channel=${GENERAL}`);
  return msgs.filter((m) => m.bot_id === 'B0EMULATOR' && m.text === text);
}

async function inject(emu, text) {
  const r = await control(emu, '/_emulator/messages', { channel: 'general', user: 'U0000003', text });
  return r.messages[0];
}

function assert(cond, why) {
  if (!cond) throw new Error(`assertion failed: ${why}`);
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A logger that keeps what Bolt and the socket client say at warn and error level. */
function recordingLogger(sink) {
  let level = LogLevel.INFO;
  return {
    debug() {},
    info() {},
    warn: (...a) => sink.push(`warn: ${a.join(' ')}`),
    error: (...a) => sink.push(`error: ${a.join(' ')}`),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName() {},
  };
}

async function main() {
  const results = { passed: 0, failed: [] };
  const check = async (name, fn) => {
    try {
      await fn();
      results.passed += 1;
      console.log(`ok   ${name}`);
    } catch (e) {
      results.failed.push(name);
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
    }
  };
  const versions = ['web-api', 'bolt', 'socket-mode']
    .map((p) => `@slack/${p} ${require(`@slack/${p}/package.json`).version}`)
    .join(', ');
  console.log(`conformance (node): ${versions}`);
  const emu = await startEmulator();
  try {
    const client = new WebClient(BOT, { slackApiUrl: emu.apiUrl });

    await check('web-api auth.test', async () => {
      const r = await client.auth.test();
      assert(r.user_id === 'U0BOT' && r.bot_id === 'B0EMULATOR', JSON.stringify(r));
    });
    await check('web-api paginate users.list', async () => {
      const ids = [];
      let pages = 0;
      for await (const page of client.paginate('users.list', { limit: 5 })) {
        pages += 1;
        ids.push(...page.members.map((m) => m.id));
      }
      assert(pages === 6 && new Set(ids).size === 27, `${pages} pages, ${ids.length} ids`);
    });
    await check('web-api filesUploadV2 shares a file_share message', async () => {
      const r = await client.filesUploadV2({ channel_id: GENERAL, content: 'hello node', filename: 'n.txt' });
      const id = r.files[0].files[0].id;
      const msgs = await control(emu, `/_emulator/messages?channel=${GENERAL}`);
      const last = msgs[msgs.length - 1];
      assert(last.subtype === 'file_share' && last.files[0].id === id, JSON.stringify(last).slice(0, 300));
    });
    await check('web-api missing_scope carries needed and provided', async () => {
      const limited = new WebClient(LIMITED, { slackApiUrl: emu.apiUrl });
      try {
        await limited.users.list();
      } catch (e) {
        assert(e.data.error === 'missing_scope' && e.data.needed === 'users:read', JSON.stringify(e.data));
        return;
      }
      throw new Error('no error');
    });
    await check('web-api invalid_blocks names the JSON pointer', async () => {
      try {
        await client.chat.postMessage({ channel: GENERAL, text: 'x', blocks: [{ type: 'bogus' }] });
      } catch (e) {
        const msgs = e.data.response_metadata.messages;
        assert(e.data.error === 'invalid_blocks' && msgs.some((m) => m.includes('/blocks/0/type')), JSON.stringify(e.data));
        return;
      }
      throw new Error('accepted');
    });
    await check('web-api waits out a 429 and retries', async () => {
      await control(emu, '/_emulator/faults', { path: '/api/chat.postMessage', status: 429, retry_after: 1 });
      const started = Date.now();
      const r = await client.chat.postMessage({ channel: GENERAL, text: 'after a 429' });
      assert(r.ok && Date.now() - started >= 900, `took ${Date.now() - started} ms`);
    });

    // Bolt in Socket Mode.
    const logs = [];
    const app = new App({
      token: BOT,
      appToken: APP,
      socketMode: true,
      clientOptions: { slackApiUrl: emu.apiUrl },
      logger: recordingLogger(logs),
    });
    app.event('app_mention', async ({ event, say }) => {
      await say({ text: `node hi <@${event.user}>`, thread_ts: event.ts });
    });
    app.message(async ({ message, say }) => {
      if (message.subtype === undefined) await say(`node said: ${message.text}`);
    });
    app.event('reaction_added', async ({ event, say }) => {
      await say({ channel: event.item.channel, text: `node thanks :${event.reaction}:` });
    });
    let firstTs;
    await check('bolt Socket Mode starts', async () => {
      await app.start();
    });
    await check('bolt Socket Mode message -> say()', async () => {
      firstTs = (await inject(emu, 'hello node')).ts;
      await waitFor('the echo', () => botReplies(emu, 'node said: hello node').then((r) => r.length));
    });
    await check('bolt Socket Mode app_mention -> say() in thread', async () => {
      const m = await inject(emu, '<@U0BOT> node?');
      const r = await waitFor('the reply', async () => {
        const got = await botReplies(emu, 'node hi <@U0000003>');
        return got.length ? got : null;
      });
      assert(r[0].thread_ts === m.ts, JSON.stringify(r[0]));
    });
    await check('bolt Socket Mode reaction_added -> say()', async () => {
      await new WebClient(USER, { slackApiUrl: emu.apiUrl }).reactions.add({ channel: GENERAL, timestamp: firstTs, name: 'eyes' });
      await waitFor('the thanks', () => botReplies(emu, 'node thanks :eyes:').then((r) => r.length));
    });
    await check('bolt Socket Mode survives a refresh: nothing twice, no abnormal close', async () => {
      const before = new Set((await control(emu, '/_emulator/sockets')).connections.map((c) => c.id));
      await control(emu, '/_emulator/sockets/disconnect', { reason: 'refresh_requested' });
      await inject(emu, 'during refresh');
      await waitFor('the echo during the refresh', () => botReplies(emu, 'node said: during refresh').then((r) => r.length));
      await waitFor('the old connection replaced', async () => {
        const now = (await control(emu, '/_emulator/sockets')).connections.map((c) => c.id);
        return now.length > 0 && now.every((id) => !before.has(id));
      });
      await inject(emu, 'after refresh');
      await waitFor('the echo after the refresh', () => botReplies(emu, 'node said: after refresh').then((r) => r.length));
      await waitFor('every envelope acknowledged', async () => (await control(emu, '/_emulator/sockets')).unacked === 0);
      const texts = ['node said: hello node', 'node hi <@U0000003>', 'node thanks :eyes:', 'node said: during refresh', 'node said: after refresh'];
      for (const t of texts) {
        const n = (await botReplies(emu, t)).length;
        assert(n === 1, `${t}: ${n} replies`);
      }
      const abnormal = logs.filter((l) => l.includes('1006') || l.startsWith('error'));
      assert(abnormal.length === 0, abnormal.join(' / '));
    });
    await app.stop();

    // Bolt over HTTP, signed deliveries.
    const secret = 'node-signing-secret';
    const port = await freePort();
    const httpApp = new App({ token: BOT, signingSecret: secret, clientOptions: { slackApiUrl: emu.apiUrl }, logLevel: LogLevel.ERROR });
    httpApp.message(async ({ message, say }) => {
      if (message.subtype === undefined) await say(`node http: ${message.text}`);
    });
    await check('bolt over HTTP answers url_verification and a signed delivery', async () => {
      await httpApp.start(port);
      const url = `http://127.0.0.1:${port}/slack/events`;
      const bad = await control(emu, '/_emulator/events/subscribe', { url, signing_secret: 'wrong' });
      assert(bad.ok === false, JSON.stringify(bad));
      const good = await control(emu, '/_emulator/events/subscribe', { url, signing_secret: secret });
      assert(good.ok === true && good.verified === true, JSON.stringify(good));
      await inject(emu, 'over http');
      await waitFor('the HTTP reply', () => botReplies(emu, 'node http: over http').then((r) => r.length));
      await control(emu, '/_emulator/events/subscribe', undefined, 'DELETE');
    });
    await httpApp.stop();
  } finally {
    emu.proc.kill();
  }
  const total = results.passed + results.failed.length;
  console.log(`conformance (node): ${results.passed} of ${total} client checks passed`);
  if (results.failed.length) {
    console.log(`conformance (node): failed: ${results.failed.join('; ')}`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((e) => {
  console.log(`conformance (node): crashed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
