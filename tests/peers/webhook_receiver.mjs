// An ops team's alert webhook for nymgate's tests, over HTTPS. Each delivery is verified with
// npm `standardwebhooks` (the Standard Webhooks reference library, an implementation independent
// of nymgate's), which also checks the timestamp's freshness.
// Run: node webhook_receiver.mjs CONFIG.json   ({cert, key, secret}) → prints `ready https://localhost:<port>`.
//
// Deliveries go to any path but /__test/. Test hooks:
//   POST /__test/mode {mode}   "ok": answer 200; "fail_first": 503 to the first attempt of each
//                              webhook-id, then 200; "hold": keep each delivery open, unanswered,
//                              until /__test/release
//   POST /__test/release       answer every held delivery with 200, and stop holding
//   GET  /__test/received      every delivery so far: {id, timestamp, verified, error, body, status, held}
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const verifier = new Webhook(config.secret.replace(/^whsec_/, ''));
let mode = 'ok';
const received = [];
const held = [];
const attempts = new Map();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

const server = https.createServer(
  { cert: readFileSync(config.cert), key: readFileSync(config.key) },
  async (req, res) => {
    const body = await readBody(req);
    const url = new URL(req.url, 'https://localhost');
    if (url.pathname === '/__test/mode') {
      mode = JSON.parse(body).mode;
      return json(res, 200, { mode });
    }
    if (url.pathname === '/__test/release') {
      mode = 'ok';
      for (const entry of held.splice(0)) {
        entry.record.held = false;
        entry.record.status = 200;
        entry.res.writeHead(200).end();
      }
      return json(res, 200, { released: true });
    }
    if (url.pathname === '/__test/received') return json(res, 200, received);

    const record = {
      id: req.headers['webhook-id'],
      timestamp: req.headers['webhook-timestamp'],
      signature: req.headers['webhook-signature'],
      body,
      verified: false,
      error: null,
      held: false,
      status: null,
    };
    try {
      verifier.verify(body, req.headers);
      record.verified = true;
    } catch (error) {
      record.error = String(error.message ?? error);
    }
    received.push(record);
    const attempt = (attempts.get(record.id) ?? 0) + 1;
    attempts.set(record.id, attempt);
    if (!record.verified) {
      record.status = 401;
      return res.writeHead(401).end();
    }
    if (mode === 'hold') {
      record.held = true;
      held.push({ record, res });
      return undefined;
    }
    record.status = mode === 'fail_first' && attempt === 1 ? 503 : 200;
    return res.writeHead(record.status).end();
  },
);
server.listen(0, '127.0.0.1', () => {
  console.log(`ready https://localhost:${server.address().port}`);
});
