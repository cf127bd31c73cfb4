// Interop with Node's `ws` (Debian node-ws) against a running wsedge.
// WSEDGE_URL names the server (tests/support/wsedge_server.py sets it); WSEDGE_DEFLATE its
// --deflate mode (docs/DEFLATE.md; default no-context-takeover), which decides what the
// compression cases expect it to negotiate.
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');

const fs = require('fs');

const URL = process.env.WSEDGE_URL;
const TLS = process.env.WSEDGE_CA ? { ca: fs.readFileSync(process.env.WSEDGE_CA) } : {};
const DEFLATE = process.env.WSEDGE_DEFLATE || 'no-context-takeover';
const results = [];
function check(name, ok, detail = '') {
  results.push(ok);
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${name}${ok ? '' : ': ' + detail}`);
}

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { perMessageDeflate: false, maxPayload: 0, ...TLS });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws) {
  return new Promise((resolve, reject) => {
    const onError = (e) => reject(e);
    ws.once('error', onError);
    ws.once('message', (data, isBinary) => {
      ws.removeListener('error', onError);
      resolve({ data, isBinary });
    });
  });
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function echoSizes() {
  const ws = await open();
  for (const size of [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16 << 20]) {
    const text = 'é'.repeat(Math.floor(size / 2)) + 'a'.repeat(size % 2);
    ws.send(text);
    let m = await next(ws);
    check(`text echo ${size} bytes`, !m.isBinary && m.data.toString() === text, `${m.data.length} bytes back`);
    const bin = crypto.randomBytes(size);
    ws.send(bin);
    m = await next(ws);
    check(`binary echo ${size} bytes`, m.isBinary && Buffer.compare(m.data, bin) === 0, `${m.data.length} bytes back`);
  }
  ws.close();
  await closed(ws);
}

async function fragmented() {
  const ws = await open();
  ws.send('frag', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted κόσμε', { fin: true });
  let m = await next(ws);
  check('fragmented text', m.data.toString() === 'fragmented κόσμε', m.data.toString());
  const parts = [crypto.randomBytes(10), crypto.randomBytes(70000), crypto.randomBytes(3)];
  parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
  m = await next(ws);
  check('fragmented binary', Buffer.compare(m.data, Buffer.concat(parts)) === 0, `${m.data.length} bytes`);
  ws.close();
  await closed(ws);
}

async function ping() {
  const ws = await open();
  const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data.toString())));
  ws.ping('are you there');
  check('ping answered with pong', (await pong) === 'are you there');
  ws.close();
  await closed(ws);
}

async function closeCodes() {
  for (const code of [1000, 1001, 3000, 4000, 4999]) {
    const ws = await open();
    const done = closed(ws);
    ws.close(code, 'reason');
    const c = await done;
    check(`close ${code} echoed`, c.code === code, `got ${c.code}`);
  }
}

async function concurrent(n = 1000) {
  const conns = await Promise.all(Array.from({ length: n }, open));
  const oks = await Promise.all(conns.map(async (ws, i) => {
    for (let j = 0; j < 3; j++) {
      const msg = `conn ${i} msg ${j}`;
      ws.send(msg);
      if ((await next(ws)).data.toString() !== msg) return false;
    }
    const done = closed(ws);
    ws.close(1000);
    return (await done).code === 1000;
  }));
  check(`${n} concurrent connections, 3 echoes each`, oks.every(Boolean), `${oks.filter((x) => !x).length} failed`);
}

function jsonText(n) {
  const rows = [];
  for (let i = 0, size = 0; size < n; i++) {
    const row = `{"id":${i},"user":"user${i % 7}","score":${(i * 37) % 1000},"tags":["alpha","beta"]},`;
    rows.push(row);
    size += row.length;
  }
  return rows.join('').slice(0, n);
}

// ws's own offer, "permessage-deflate; client_max_window_bits" (perMessageDeflate is on by
// default in its client): what wsedge answers in its mode, and compressible messages above ws's
// 1024-byte threshold (ws compresses those) both ways. The server's compressed replies are
// counted by wrapping the extension's decompress, which ws calls only for RSV1 messages.
async function deflate() {
  const want = {
    'no-context-takeover': 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    'context-takeover': 'permessage-deflate; client_max_window_bits=15',
  }[DEFLATE];
  const ws = new WebSocket(URL, { maxPayload: 0, ...TLS });
  let answer;
  ws.once('upgrade', (res) => { answer = res.headers['sec-websocket-extensions']; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  check(`${DEFLATE}: ws.extensions is permessage-deflate`, ws.extensions === 'permessage-deflate', ws.extensions);
  check(`${DEFLATE}: ws's default offer answered ${want}`, answer === want, answer);
  const pmd = ws._extensions['permessage-deflate'];
  let compressed = 0;
  const decompress = pmd.decompress.bind(pmd);
  pmd.decompress = (data, fin, cb) => { compressed++; decompress(data, fin, cb); };
  const sizes = [2000, 64 << 10, 1 << 20, 2000, 64 << 10];
  for (const size of sizes) {
    const text = jsonText(size);
    ws.send(text);
    let m = await next(ws);
    check(`${DEFLATE}: compressed text echo ${size} bytes`, !m.isBinary && m.data.toString() === text,
      `${m.data.length} bytes back`);
    const bin = Buffer.from(text);
    ws.send(bin);
    m = await next(ws);
    check(`${DEFLATE}: compressed binary echo ${size} bytes`, m.isBinary && Buffer.compare(m.data, bin) === 0,
      `${m.data.length} bytes back`);
  }
  check(`${DEFLATE}: every echo came back compressed`, compressed === 2 * sizes.length, `${compressed} compressed`);
  ws.close();
  await closed(ws);
}

(async () => {
  for (const t of [deflate, echoSizes, fragmented, ping, closeCodes, concurrent]) {
    try {
      await t();
    } catch (e) {
      check(t.name, false, String(e));
    }
  }
  const passed = results.filter(Boolean).length;
  const failed = results.length - passed;
  console.log(`node ws interop (${URL.split(':')[0]}): ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
