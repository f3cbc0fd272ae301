'use strict';
// The worker as a process against a scripted fake SQS/SNS endpoint (no LocalStack): heartbeat
// (and FLOWGATE_BROKEN=no-heartbeat), business failures dead-lettered with BusinessError, SIGTERM
// releasing the messages not yet started, and transport failures (refused, reset) never fatal.
const { test } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');

const WORKER = path.join(__dirname, '..', 'worker.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const md5 = (s) => crypto.createHash('md5').update(s, 'utf8').digest('hex');

// A fake AWS endpoint. `script(n)` returns the messages of the n-th ReceiveMessage (empty receives
// answer after 150 ms, as a short long poll). `failPublish` = how many Publish calls get their
// connection destroyed, as is every KMS call. Every call is recorded as { op, input }.
function fakeAws(script, { failPublish = 0, kms = null } = {}) {
  const calls = [];
  let receives = 0;
  let publishFailures = failPublish;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', async () => {
      const target = req.headers['x-amz-target'];
      if (target && target.startsWith('TrentService.')) { // KMS: unreachable, unless `kms` answers
        const op = target.split('.').pop();
        const input = JSON.parse(body || '{}');
        calls.push({ op: `kms:${op}`, input });
        if (!kms) { req.socket.destroy(); return; }
        const out = kms(op, input);
        res.writeHead(out.__type ? 400 : 200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(out));
        return;
      }
      if (target) { // SQS, AWS JSON 1.0
        const op = target.split('.').pop();
        const input = JSON.parse(body || '{}');
        calls.push({ op, input });
        let out = {};
        if (op === 'ReceiveMessage') {
          const msgs = script(receives++) || [];
          if (!msgs.length) await sleep(150);
          out = { Messages: msgs.map((m) => ({ ...m, MD5OfBody: md5(m.Body) })) };
        } else if (op === 'SendMessage') {
          out = { MessageId: crypto.randomUUID(), MD5OfMessageBody: md5(input.MessageBody) };
        }
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(out));
        return;
      }
      const form = Object.fromEntries(new URLSearchParams(body)); // SNS, query protocol
      calls.push({ op: form.Action, input: form });
      if (form.Action === 'Publish' && publishFailures > 0) {
        publishFailures -= 1;
        req.socket.destroy(); // connection reset mid-request
        return;
      }
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(`<${form.Action}Response xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><${form.Action}Result>`
        + `<MessageId>${crypto.randomUUID()}</MessageId></${form.Action}Result>`
        + `<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></${form.Action}Response>`);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const url = `http://127.0.0.1:${server.address().port}`;
    resolve({ url, calls, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) });
  }));
}

function command(name, entity, seq, payload, receiveCount = 1) {
  const eventId = crypto.randomUUID();
  const body = JSON.stringify({ name, entity: { id: entity, isNew: seq === 1 }, payload,
    metadata: { eventId, isReplay: false, occurredOn: '2026-01-01T00:00:00.000Z', sequenceNo: seq, correlationId: eventId, properties: {} } });
  const s = (v) => ({ DataType: 'String', StringValue: String(v) });
  return {
    MessageId: crypto.randomUUID(), ReceiptHandle: `rh-${crypto.randomUUID()}`, Body: body,
    Attributes: { ApproximateReceiveCount: String(receiveCount), MessageGroupId: entity },
    MessageAttributes: { CommandType: s(name), EntityId: s(entity), SequenceNo: s(seq), EventId: s(eventId), CorrelationId: s(eventId) },
  };
}
const again = (m, receiveCount) => ({ ...m, ReceiptHandle: `rh-${crypto.randomUUID()}`, Attributes: { ...m.Attributes, ApproximateReceiveCount: String(receiveCount) } });
const place = (entity, seq = 1, rc = 1) => command('PlaceOrder', entity, seq, { customerId: 'c', sku: 'S', quantity: 1, amountCents: 5 }, rc);

function start(url, env = {}) {
  const child = spawn(process.execPath, [WORKER], {
    env: {
      PATH: process.env.PATH, AWS_ENDPOINT_URL: url, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test',
      FLOWGATE_COMMAND_QUEUE_URL: `${url}/000000000000/cmds.fifo`, FLOWGATE_DEAD_LETTER_QUEUE_URL: `${url}/000000000000/cmds-dlq.fifo`,
      FLOWGATE_EVENT_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:events.fifo', FLOWGATE_IDEMPOTENCY_URL: 'memory:',
      FLOWGATE_VISIBILITY_TIMEOUT: '2', FLOWGATE_MAX_RECEIVE_COUNT: '3', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  return {
    log: () => log,
    async stop() { child.kill('SIGTERM'); return exited; },
    exited,
  };
}

async function until(cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(50);
  }
}

const ops = (calls, op) => calls.filter((c) => c.op === op);

test('contract v1.4: a command sealed under the destination context (a caching producer) is opened', async () => {
  const env = require('../lib/envelope');
  const arn = 'arn:aws:kms:us-east-1:000000000000:key/k';
  const dataKey = crypto.randomBytes(32);
  const edk = Buffer.from('edk-for-cmds.fifo');
  const m = place('o1');
  const eventId = m.MessageAttributes.EventId.StringValue;
  const ctx = env.context(eventId, 'cmds.fifo', 'o1', 'PlaceOrder');
  m.MessageAttributes.Encryption = { DataType: 'String', StringValue: env.SCHEME };
  m.Body = env.toBody(env.sealWithKey(dataKey, edk, arn, ctx, Buffer.from(m.Body, 'utf8')));
  const shared = JSON.stringify(env.destinationContext('cmds.fifo'));
  const aws = await fakeAws((n) => (n === 0 ? [m] : []), {
    kms(op, input) {
      if (op === 'DescribeKey') return { KeyMetadata: { KeyId: 'k', Arn: arn, KeyState: 'Enabled', Enabled: true } };
      if (op === 'GenerateDataKey') {
        return { KeyId: arn, Plaintext: crypto.randomBytes(32).toString('base64'), CiphertextBlob: 'ZWRr' };
      }
      // Decrypt: this data key was issued under the destination context only
      if (JSON.stringify(input.EncryptionContext) !== shared) return { __type: 'InvalidCiphertextException', message: 'context' };
      return { KeyId: arn, Plaintext: dataKey.toString('base64') };
    },
  });
  const w = start(aws.url, { FLOWGATE_KMS_KEY_ID: 'k' });
  const deleted = () => ops(aws.calls, 'DeleteMessage').length + ops(aws.calls, 'DeleteMessageBatch').length;
  await until(() => deleted() >= 1, 10000).catch(() => { throw new Error(`never deleted: ${w.log()}`); });
  const decrypts = ops(aws.calls, 'kms:Decrypt').map((c) => c.input.EncryptionContext);
  assert.deepStrictEqual(decrypts, [ctx, env.destinationContext('cmds.fifo')], w.log());
  assert.strictEqual(ops(aws.calls, 'SendMessage').length, 0, w.log()); // nothing dead-lettered
  assert.ok(ops(aws.calls, 'Publish').length + ops(aws.calls, 'PublishBatch').length >= 1, w.log());
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});
const visibility = (calls, handle, vt) => ops(calls, 'ChangeMessageVisibility').filter((c) => c.input.ReceiptHandle === handle && c.input.VisibilityTimeout === vt);

test('a handler longer than VT/2 extends the visibility every VT/2 until the delete', async () => {
  const m = place('o1');
  const aws = await fakeAws((n) => (n === 0 ? [m] : []));
  const w = start(aws.url, { FLOWGATE_HANDLER_DELAY_MS: '2600' });
  await until(() => ops(aws.calls, 'DeleteMessage').length === 1);
  assert.ok(visibility(aws.calls, m.ReceiptHandle, 2).length >= 2, w.log());
  const deleteAt = aws.calls.findIndex((c) => c.op === 'DeleteMessage');
  await sleep(1500);
  assert.strictEqual(aws.calls.slice(deleteAt).filter((c) => c.op === 'ChangeMessageVisibility').length, 0, 'heartbeat stopped');
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

test('FLOWGATE_BROKEN=no-heartbeat never extends the visibility', async () => {
  const m = place('o1');
  const aws = await fakeAws((n) => (n === 0 ? [m] : []));
  const w = start(aws.url, { FLOWGATE_HANDLER_DELAY_MS: '2600', FLOWGATE_BROKEN: 'no-heartbeat' });
  await until(() => ops(aws.calls, 'DeleteMessage').length === 1);
  assert.strictEqual(ops(aws.calls, 'ChangeMessageVisibility').length, 0, w.log());
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

// contract section 3: a duplicate re-publishes its events with MessageDeduplicationId = the event id
// (the FIFO topic drops the copy); FLOWGATE_BROKEN=unstable-dedup-id sends a random one instead
for (const broken of ['', 'unstable-dedup-id']) {
  test(`a duplicate's re-publish carries ${broken ? 'a fresh (broken)' : 'the same'} deduplication id`, async () => {
    const m = place('o1');
    const resend = { ...m, MessageId: crypto.randomUUID(), ReceiptHandle: `rh-${crypto.randomUUID()}` };
    const script = [[m], [resend]];
    const aws = await fakeAws((n) => script[n]);
    const w = start(aws.url, broken ? { FLOWGATE_BROKEN: broken } : {});
    await until(() => ops(aws.calls, 'DeleteMessage').length === 2);
    const published = ops(aws.calls, 'Publish');
    assert.strictEqual(published.length, 2, w.log());
    const eventIds = published.map((c) => JSON.parse(c.input.Message).metadata.eventId); // plaintext bus
    assert.strictEqual(eventIds[0], eventIds[1], 'the same derived event id both times');
    const dedup = published.map((c) => c.input.MessageDeduplicationId);
    if (broken) assert.notStrictEqual(dedup[0], dedup[1]);
    else assert.deepStrictEqual(dedup, [eventIds[0], eventIds[0]]);
    assert.strictEqual(await w.stop(), 0);
    await aws.close();
  });
}

test('a business failure is retried, then dead-lettered with BusinessError and deleted', async () => {
  const first = place('o1');
  const dup = place('o1', 2); // PlaceOrder for an order that exists: invalid transition
  const later = command('AuthorizePayment', 'o1', 3, { paymentId: 'p', amountCents: 5 });
  const script = [[first], [dup], [again(dup, 2)], [again(dup, 3)], [later]];
  const aws = await fakeAws((n) => script[n]);
  const w = start(aws.url);
  await until(() => ops(aws.calls, 'DeleteMessage').length === 3);
  const released = ops(aws.calls, 'ChangeMessageVisibility').filter((c) => c.input.VisibilityTimeout === 0);
  assert.strictEqual(released.length, 2, 'released on receives 1 and 2');
  const [sent] = ops(aws.calls, 'SendMessage');
  assert.ok(sent, w.log());
  assert.strictEqual(sent.input.QueueUrl, `${aws.url}/000000000000/cmds-dlq.fifo`);
  assert.strictEqual(sent.input.MessageBody, dup.Body);
  assert.strictEqual(sent.input.MessageGroupId, 'o1');
  assert.strictEqual(sent.input.MessageDeduplicationId, dup.MessageId);
  assert.match(sent.input.MessageAttributes.DeadLetterReason.StringValue, /^BusinessError: /);
  assert.strictEqual(sent.input.MessageAttributes.DeadLetterSourceMessageId.StringValue, dup.MessageId);
  assert.strictEqual(sent.input.MessageAttributes.CommandType.StringValue, 'PlaceOrder');
  assert.strictEqual(ops(aws.calls, 'Publish').length, 2, 'OrderPlaced, then PaymentAuthorized: the worker went on');
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

test('GetOrder (v1.3) is answered by OrderState: the command log once per command, even after a redelivery', async () => {
  const first = place('o1');
  const pay = command('AuthorizePayment', 'o1', 2, { paymentId: 'p', amountCents: 5 });
  const read = command('GetOrder', 'o1', 3, {});
  const script = [[first], [pay], [again(first, 2)], [read]];
  const aws = await fakeAws((n) => script[n]);
  const w = start(aws.url);
  await until(() => ops(aws.calls, 'DeleteMessage').length === 4);
  const published = ops(aws.calls, 'Publish').map((c) => JSON.parse(c.input.Message));
  const answer = published.find((e) => e.name === 'OrderState');
  assert.ok(answer, w.log());
  const id = (m) => JSON.parse(m.Body).metadata.eventId;
  assert.deepStrictEqual(answer.payload.applied, [id(first), id(pay)]);
  assert.strictEqual(answer.payload.version, 2);
  assert.strictEqual(answer.payload.status, 'PAID');
  assert.strictEqual(answer.payload.paidCents, 5);
  assert.strictEqual(answer.metadata.sequenceNo, 3);
  assert.strictEqual(answer.metadata.causationId, id(read));
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

test('a dead-lettered business failure replayed after the fix takes effect (contract v1.3, D24)', async () => {
  const auth = command('AuthorizePayment', 'o1', 2, { paymentId: 'p', amountCents: 5 }); // o1 not placed yet
  const replayed = { ...auth, MessageId: crypto.randomUUID(), ReceiptHandle: `rh-${crypto.randomUUID()}` };
  const script = [[auth], [again(auth, 2)], [again(auth, 3)], [place('o1')], [replayed]];
  const aws = await fakeAws((n) => script[n]);
  const w = start(aws.url);
  await until(() => ops(aws.calls, 'DeleteMessage').length === 3);
  assert.strictEqual(ops(aws.calls, 'SendMessage').length, 1, 'dead-lettered once with BusinessError');
  const names = ops(aws.calls, 'Publish').map((c) => c.input.Subject);
  assert.deepStrictEqual(names, ['OrderPlaced', 'PaymentAuthorized'], w.log());
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

test('SIGTERM finishes the message being handled and releases the ones not started', async () => {
  const batch = [place('o1'), command('AuthorizePayment', 'o1', 2, { paymentId: 'p', amountCents: 5 }),
    command('ReserveInventory', 'o1', 3, { sku: 'S', quantity: 1 })];
  const aws = await fakeAws((n) => (n === 0 ? batch : []));
  const w = start(aws.url, { FLOWGATE_HANDLER_DELAY_MS: '1200' });
  await until(() => ops(aws.calls, 'ReceiveMessage').length >= 1);
  await sleep(400);
  assert.strictEqual(await w.stop(), 0);
  const deleted = ops(aws.calls, 'DeleteMessage').map((c) => c.input.ReceiptHandle);
  assert.deepStrictEqual(deleted, [batch[0].ReceiptHandle], w.log());
  for (const m of batch.slice(1)) assert.strictEqual(visibility(aws.calls, m.ReceiptHandle, 0).length, 1, w.log());
  assert.strictEqual(ops(aws.calls, 'ReceiveMessage').length, 1, 'no receive after SIGTERM');
  await aws.close();
});

test('a reset publish leaves the message for redelivery; the worker keeps polling', async () => {
  const m = place('o1');
  const aws = await fakeAws((n) => (n === 0 ? [m] : n === 1 ? [again(m, 2)] : []), { failPublish: 4 });
  const w = start(aws.url);
  await until(() => ops(aws.calls, 'DeleteMessage').length === 1, 20000);
  assert.strictEqual(ops(aws.calls, 'DeleteMessage')[0].input.ReceiptHandle !== m.ReceiptHandle, true, 'the first receipt was not deleted');
  assert.match(w.log(), /transient failure/);
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

test('a KMS outage while decrypting is transport, never poison: nothing is dead-lettered', async () => {
  const m = place('o1', 1, 3); // on its maxReceiveCount-th receive: poison would be forwarded now
  m.MessageAttributes.Encryption = { DataType: 'String', StringValue: 'kms-aes256gcm-v1' };
  m.Body = Buffer.from(JSON.stringify({ Version: 1, KeyId: 'arn:aws:kms:us-east-1:000000000000:key/k', Destination: 'cmds.fifo',
    EncryptedDataKey: 'AA==', Nonce: 'AAAAAAAAAAAAAAAA', Tag: 'AAAAAAAAAAAAAAAAAAAAAA==', Ciphertext: 'AA==' })).toString('base64');
  const aws = await fakeAws((n) => (n === 0 ? [m] : []));
  const w = start(aws.url, { FLOWGATE_KMS_KEY_ID: 'k' });
  await until(() => ops(aws.calls, 'kms:DescribeKey').length >= 1 && /transient failure/.test(w.log()), 20000);
  await sleep(300);
  assert.strictEqual(ops(aws.calls, 'SendMessage').length, 0, w.log());
  assert.strictEqual(ops(aws.calls, 'DeleteMessage').length, 0, w.log());
  assert.strictEqual(await w.stop(), 0);
  await aws.close();
});

for (const kind of ['refused', 'reset']) {
  test(`connections ${kind} on every call: the poll loop backs off and goes on`, async () => {
    let server = null;
    let port;
    if (kind === 'reset') {
      server = net.createServer((s) => s.destroy());
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      port = server.address().port;
    } else {
      const probe = net.createServer();
      await new Promise((r) => probe.listen(0, '127.0.0.1', r));
      port = probe.address().port;
      await new Promise((r) => probe.close(r)); // nothing listens there any more
    }
    const w = start(`http://127.0.0.1:${port}`);
    await until(() => (w.log().match(/receive failed/g) || []).length >= 2, 20000);
    assert.strictEqual(await w.stop(), 0);
    if (server) await new Promise((r) => server.close(r));
  });
}
