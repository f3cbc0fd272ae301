#!/usr/bin/env node
'use strict';
// A flowgate contract v1 (v1.2) worker for the order domain, written from docs/contract.md alone.
// Start: node worker.js   (all configuration from FLOWGATE_* / AWS_* environment variables)
// Loop:  long-poll the FIFO command queue -> per message group, in order: decode (+ decrypt)
//        -> idempotent effect (entity record + applied-command ids, one atomic write)
//        -> publish the events (deterministic ids) to the FIFO topic -> delete.
//        Every message in hand has a heartbeat (visibility extended every VT/2); every AWS call
//        may fail (outage, reset, throttling): it is logged and the message retried, never fatal.
//        A dependency failure opens a breaker: no receive until the dependency answers again
//        (KMS: a GenerateDataKey probe; otherwise a back-off), so an outage does not burn the
//        messages' receive counts towards the queue's native redrive (contract v1.2 section 6).
const crypto = require('node:crypto');
const { SQSClient, ReceiveMessageCommand, DeleteMessageCommand, SendMessageCommand,
  ChangeMessageVisibilityCommand } = require('@aws-sdk/client-sqs');
const { SNSClient, PublishCommand } = require('@aws-sdk/client-sns');
const { KMSClient, GenerateDataKeyCommand, DecryptCommand, DescribeKeyCommand } = require('@aws-sdk/client-kms');
const env = require('./lib/envelope');
const json = require('./lib/strict-json');
const { openStore } = require('./lib/store');
const { derivedEventId } = require('./lib/ids');

const E = process.env;
const cfg = {
  endpoint: E.FLOWGATE_ENDPOINT_URL || E.AWS_ENDPOINT_URL || undefined,
  // contract v1.4: KMS calls go to FLOWGATE_KMS_ENDPOINT_URL when it is set (the gate cuts it alone)
  kmsEndpoint: E.FLOWGATE_KMS_ENDPOINT_URL || E.AWS_ENDPOINT_URL_KMS || E.FLOWGATE_ENDPOINT_URL || E.AWS_ENDPOINT_URL || undefined,
  region: E.AWS_REGION || E.AWS_DEFAULT_REGION || 'us-east-1',
  queueUrl: required('FLOWGATE_COMMAND_QUEUE_URL'),
  dlqUrl: E.FLOWGATE_DEAD_LETTER_QUEUE_URL || '',
  topicArn: required('FLOWGATE_EVENT_TOPIC_ARN'),
  kmsKeyId: E.FLOWGATE_KMS_KEY_ID || '',
  storeUrl: E.FLOWGATE_IDEMPOTENCY_URL || 'memory:',
  visibility: E.FLOWGATE_VISIBILITY_TIMEOUT ? parseInt(E.FLOWGATE_VISIBILITY_TIMEOUT, 10) : undefined,
  maxReceive: parseInt(E.FLOWGATE_MAX_RECEIVE_COUNT || '3', 10),
  delayMs: parseInt(E.FLOWGATE_HANDLER_DELAY_MS || '0', 10),
  waitSeconds: parseInt(E.FLOWGATE_WAIT_TIME_SECONDS || '1', 10),
  instance: E.FLOWGATE_INSTANCE_ID || String(process.pid),
  // deliberate bugs for the gate's own tests (comma list): skip-dedup, drop-poison, random-event-id,
  // plaintext-events, ignore-sigterm, no-heartbeat, kms-disabled-is-poison, no-breaker,
  // id-reuse-is-duplicate, unstable-dedup-id; v1.4: kms-transport-is-poison, type-after-envelope,
  // sealed-contradiction-is-decryption-error, no-receive-count, dead-letter-group-lost,
  // no-release-on-sigterm. Never set in production.
  broken: new Set((E.FLOWGATE_BROKEN || '').split(',').filter(Boolean)),
};
// the heartbeat extends visibility to this many seconds every half of it (SQS's default VT if unset)
cfg.heartbeatSeconds = cfg.visibility || 30;
const queueName = cfg.queueUrl.split('/').pop();
const topicName = cfg.topicArn.split(':').pop();
const MAX_BODY = 256 * 1024;
const COMMANDS = {
  PlaceOrder: { from: [null], to: 'PENDING', event: 'OrderPlaced' },
  AuthorizePayment: { from: ['PENDING'], to: 'PAID', event: 'PaymentAuthorized' },
  ReserveInventory: { from: ['PAID'], to: 'RESERVED', event: 'InventoryReserved' },
  ConfirmOrder: { from: ['RESERVED'], to: 'CONFIRMED', event: 'OrderConfirmed' },
  CancelOrder: { from: ['PENDING', 'PAID', 'RESERVED'], to: 'CANCELLED', event: 'OrderCancelled' },
  // contract v1.3: the read -- an ordinary command of the group that changes nothing, answered by
  // one OrderState event with the order's state (its command log, version, status, figures)
  GetOrder: { from: ['PENDING', 'PAID', 'RESERVED', 'CONFIRMED', 'CANCELLED'], to: null, event: 'OrderState', read: true },
};

function required(name) {
  if (!E[name]) { console.error(`flowgate node worker: ${name} is required`); process.exit(2); }
  return E[name];
}
const log = (...a) => console.error(`[node-worker ${cfg.instance}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Bounded connects and requests: a cut or black-holed endpoint fails the call (and the message is
// retried) instead of hanging the poll loop; the long poll's wait is inside the request timeout.
const aws = { region: cfg.region, endpoint: cfg.endpoint,
  requestHandler: { connectionTimeout: 5000, requestTimeout: (cfg.waitSeconds + 15) * 1000 } };
const sqs = new SQSClient(aws);
const sns = new SNSClient(aws);
const kms = new KMSClient({ ...aws, endpoint: cfg.kmsEndpoint });
const store = openStore(cfg.storeUrl);

class Poison extends Error { constructor(reason, msg) { super(msg); this.reason = reason; } }
class BusinessFailure extends Error {}
// Contract v1.2 section 5: KMS refusing *this* ciphertext / context / key is poison (DecryptionError).
// Every other KMS failure -- the key disabled, pending deletion or not found, access denied, KMS
// unavailable or internal errors, throttling, 5xx, connection refused/reset, timeouts -- says nothing
// about the message: it is transient, the message is retried and never dead-lettered for it.
const KMS_REFUSALS = new Set(['InvalidCiphertextException', 'IncorrectKeyException',
  'ValidationException']);
// the old (v1.1) misclassification, for the gate's own tests: a disabled key read as a refusal
if (cfg.broken.has('kms-disabled-is-poison')) {
  for (const n of ['DisabledException', 'KMSInvalidStateException', 'NotFoundException', 'AccessDeniedException', 'InvalidKeyUsageException']) KMS_REFUSALS.add(n);
}

// The breaker (contract v1.2 section 1: during a dependency outage stop receiving). A transient
// failure of a dependency opens it; the poll loop then receives nothing until waitClosed() sees the
// dependency answer: KMS by a GenerateDataKey probe, any other (SNS, the store, SQS sends) after a
// back-off (1, 2, 4, 8 s). Receives themselves failing are handled by the poll loop's own back-off.
const breaker = { open: false, kms: false, failures: 0 };
function trip(err) {
  if (cfg.broken.has('no-breaker')) return;
  breaker.open = true;
  breaker.kms = breaker.kms || !!err.kms;
  log(`breaker open (${err.kms ? 'KMS' : 'dependency'}: ${err.name})`);
}
async function waitClosed() {
  let backoff = 1000;
  while (breaker.open && running) {
    await sleep(backoff);
    backoff = Math.min(8000, backoff * 2);
    if (breaker.kms && cfg.kmsKeyId) {
      try {
        await kms.send(new GenerateDataKeyCommand({ KeyId: cfg.kmsKeyId, KeySpec: 'AES_256' }));
      } catch (err) { log(`breaker: KMS still failing (${err.name})`); continue; }
    }
    breaker.open = false; breaker.kms = false;
    log('breaker closed');
  }
}
// KMS calls tag their transient errors, so the breaker probes KMS before receiving again
async function kmsSend(command) {
  try { return await kms.send(command); } catch (err) { if (!KMS_REFUSALS.has(err.name)) err.kms = true; throw err; }
}

const attr = (msg, name) => (msg.MessageAttributes && msg.MessageAttributes[name] ? msg.MessageAttributes[name].StringValue : undefined);

// The key ids this consumer accepts in an envelope: the configured id, and the key's id and ARN.
let accepted = null;
async function acceptedKeys() {
  if (!accepted) {
    const meta = (await kmsSend(new DescribeKeyCommand({ KeyId: cfg.kmsKeyId }))).KeyMetadata;
    accepted = new Set([cfg.kmsKeyId, meta.KeyId, meta.Arn]);
  }
  return accepted;
}

// Contract v1.2 decode rules (docs/hostile.md "The decode rules"): the order of the checks decides
// the reason code of a message that breaks several.
const ID = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]{1,128}$/; // SQS MessageGroupId/DeduplicationId
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)$/;
const INT64_MAX = 2n ** 63n - 1n;
const PAYLOADS = {
  PlaceOrder: { customerId: 'string', sku: 'string', quantity: 'int', amountCents: 'int' },
  AuthorizePayment: { paymentId: 'string', amountCents: 'int' },
  ReserveInventory: { sku: 'string', quantity: 'int' },
  ConfirmOrder: {},
  CancelOrder: { reason: 'string' },
  GetOrder: {},
};
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof json.JFloat);
const isId = (v) => typeof v === 'string' && ID.test(v);

async function decodeCommand(msg) {
  if (Buffer.byteLength(msg.Body || '', 'utf8') > MAX_BODY) throw new Poison('OversizedMessage', 'body over 256 KiB');
  const type = attr(msg, 'CommandType'); const entityId = attr(msg, 'EntityId'); const seq = attr(msg, 'SequenceNo');
  if (type === undefined && attr(msg, 'EventType') !== undefined) throw new Poison('UnknownMessageType', 'an event on a command queue');
  if (type !== undefined && attr(msg, 'EventType') !== undefined) throw new Poison('DecodeError', 'both CommandType and EventType');
  for (const [n, v] of [['CommandType', type], ['EntityId', entityId], ['SequenceNo', seq]]) {
    if (v === undefined || v === '') throw new Poison('MissingAttribute', `attribute ${n} missing`);
  }
  // v1.4 decode rule 2: the registered type is judged from the attribute, before the envelope is opened
  if (!COMMANDS[type] && !cfg.broken.has('type-after-envelope')) throw new Poison('UnknownMessageType', `unknown command ${type}`);
  let text = msg.Body;
  const scheme = attr(msg, 'Encryption');
  if (scheme !== undefined || cfg.kmsKeyId) {
    if (scheme !== env.SCHEME) throw new Poison('DecryptionError', `expected Encryption=${env.SCHEME}, got ${scheme}`);
    if (!cfg.kmsKeyId) throw new Poison('DecryptionError', 'encrypted message but no FLOWGATE_KMS_KEY_ID');
    const messageId = attr(msg, 'EventId');
    if (!messageId) throw new Poison('MissingAttribute', 'attribute EventId missing on an encrypted message');
    const ctx = env.context(messageId, queueName, entityId, type);
    const keys = await acceptedKeys(); // outside the try: a DescribeKey failure is transport, not poison
    try {
      const sealed = env.fromBody(msg.Body);
      if (sealed.destination !== queueName) throw new env.EnvelopeError(`envelope is for ${sealed.destination}, not ${queueName}`);
      if (!keys.has(sealed.keyId)) throw new env.EnvelopeError(`envelope key ${sealed.keyId} is not an accepted key`);
      const decrypt = (context) => kmsSend(new DecryptCommand({ CiphertextBlob: sealed.encryptedDataKey, KeyId: sealed.keyId, EncryptionContext: context }));
      let dk;
      try { dk = await decrypt(ctx); } catch (err) {
        // contract v1.4: a producer with a data-key cache seals under the destination context
        if (err.name !== 'InvalidCiphertextException') throw err;
        dk = await decrypt(env.destinationContext(queueName));
      }
      if (!keys.has(dk.KeyId)) throw new env.EnvelopeError('KMS decrypted with an unexpected key');
      const key = Buffer.from(dk.Plaintext);
      let raw;
      try { raw = env.openWithKey(key, sealed, ctx); } finally { key.fill(0); }
      try { text = utf8.decode(raw); } catch { throw new env.EnvelopeError('the sealed plaintext is not UTF-8'); }
    } catch (err) {
      // the v1.3 step-5 misreading, for the gate's own tests: "any failure is poison", transport errors too
      const transportIsPoison = cfg.broken.has('kms-transport-is-poison') && !err.$fault;
      if (!(err instanceof env.EnvelopeError) && !KMS_REFUSALS.has(err.name) && !transportIsPoison) throw err; // transport, not poison
      throw new Poison('DecryptionError', err.message);
    }
  }
  let body;
  try { body = json.parse(text); } catch (err) { throw new Poison('DecodeError', `body is not strict JSON: ${err.message}`); }
  if (!isObject(body) || typeof body.name !== 'string' || !isObject(body.entity) || !isObject(body.payload) || !isObject(body.metadata)) {
    throw new Poison('DecodeError', 'body does not follow the command schema');
  }
  if (!COMMANDS[body.name] || !COMMANDS[type]) throw new Poison('UnknownMessageType', `unknown command ${type}`);
  const m = body.metadata;
  for (const [field, want] of Object.entries(PAYLOADS[body.name])) {
    const v = body.payload[field];
    if (want === 'string' ? typeof v !== 'string' : !json.isInt(v)) throw new Poison('DecodeError', `payload.${field} is not a ${want}`);
  }
  if (!isId(body.entity.id) || (body.entity.isNew !== undefined && typeof body.entity.isNew !== 'boolean')) {
    throw new Poison('DecodeError', 'entity.id is not a valid id, or isNew not a boolean');
  }
  if (!isId(m.eventId)) throw new Poison('DecodeError', 'metadata.eventId is not a valid id');
  if (!json.isInt(m.sequenceNo) || BigInt(m.sequenceNo) < 1n || BigInt(m.sequenceNo) > INT64_MAX) {
    throw new Poison('DecodeError', 'metadata.sequenceNo is not an integer in 1..2^63-1');
  }
  if (typeof m.occurredOn !== 'string' || !STAMP.test(m.occurredOn) || Number.isNaN(Date.parse(m.occurredOn))) {
    throw new Poison('DecodeError', 'metadata.occurredOn is not an ISO-8601 UTC timestamp');
  }
  if (m.isReplay !== undefined && typeof m.isReplay !== 'boolean') throw new Poison('DecodeError', 'metadata.isReplay is not a boolean');
  for (const f of ['correlationId', 'causationId']) {
    if (m[f] !== undefined && m[f] !== null && m[f] !== '' && !isId(m[f])) throw new Poison('DecodeError', `metadata.${f} is not an id`);
  }
  if (m.properties !== undefined && m.properties !== null
      && !(isObject(m.properties) && Object.values(m.properties).every((v) => typeof v === 'string'))) {
    throw new Poison('DecodeError', 'metadata.properties is not a string map');
  }
  if (body.name !== type || body.entity.id !== entityId || String(m.sequenceNo) !== seq
      || (attr(msg, 'EventId') !== undefined && attr(msg, 'EventId') !== m.eventId)) {
    // v1.4: a body that opened and contradicts its attributes is a DecodeError (the broken variant
    // keeps the v1.3 step-5 reading: DecryptionError on an encrypted bus)
    const sealedReading = cfg.kmsKeyId && cfg.broken.has('sealed-contradiction-is-decryption-error');
    throw new Poison(sealedReading ? 'DecryptionError' : 'DecodeError', 'body contradicts its attributes');
  }
  return body;
}

function decide(cmd, current) {
  const rule = COMMANDS[cmd.name];
  let state = current ? current.state : null;
  if (cfg.broken.has('skip-dedup') && cmd.name === 'PlaceOrder') state = null; // naive "isNew creates"
  if (!rule.from.includes(state)) throw new BusinessFailure(`${cmd.name} not allowed in state ${state}`);
  const p = cmd.payload;
  if (cmd.name === 'PlaceOrder' && (p.quantity <= 0 || p.amountCents < 0)) {
    throw new BusinessFailure('PlaceOrder needs a positive quantity and a non-negative amount');
  }
  const m = cmd.metadata;
  // the order's figures and command log (contract v1.3): each state-changing command appends its
  // eventId once; a read reports them and changes nothing
  const before = (current && current.order) || { log: [], amountCents: 0, paidCents: 0, reservedQuantity: 0 };
  const order = rule.read ? before : { ...before, log: [...before.log, m.eventId] };
  if (cmd.name === 'PlaceOrder') order.amountCents = p.amountCents;
  if (cmd.name === 'AuthorizePayment') order.paidCents = p.amountCents;
  if (cmd.name === 'ReserveInventory') order.reservedQuantity = p.quantity;
  if (cmd.name === 'CancelOrder') Object.assign(order, { paidCents: 0, reservedQuantity: 0 });
  const payload = rule.read
    ? { status: state, version: order.log.length, applied: order.log, amountCents: order.amountCents,
      paidCents: order.paidCents, reservedQuantity: order.reservedQuantity }
    : { ...cmd.payload, status: rule.to };
  const event = {
    name: rule.event,
    entity: { id: cmd.entity.id },
    payload,
    metadata: {
      eventId: cfg.broken.has('random-event-id') ? crypto.randomUUID() : derivedEventId(m.eventId, 0, rule.event), isReplay: !!m.isReplay, occurredOn: m.occurredOn,
      sequenceNo: m.sequenceNo, correlationId: m.correlationId || m.eventId, causationId: m.eventId, properties: {},
    },
  };
  return { state: rule.read ? state : rule.to, order, events: [event] };
}

// Contract v1.2 section 4: an eventId is one command. The first content seen with an id claims it
// (store.claim: create-if-absent, across entities); a later message with that id and the same
// content (name, entity, sequenceNo, payload; occurredOn may differ: a late resend) is the same
// command, one with other content is poison (IdempotencyConflict) -- never a duplicate.
function fingerprint(cmd) {
  const canon = (v) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.keys(v).sort().reduce((o, k) => { o[k] = canon(v[k]); return o; }, {}) : v);
  return crypto.createHash('sha256')
    .update(json.stringify([cmd.name, cmd.entity.id, cmd.metadata.sequenceNo, canon(cmd.payload)])).digest('hex');
}
async function claim(cmd) {
  if (cfg.broken.has('id-reuse-is-duplicate')) return;
  const mine = fingerprint(cmd);
  const theirs = await store.claim(cmd.metadata.eventId, mine);
  if (theirs !== mine) {
    throw new Poison('IdempotencyConflict', `eventId ${cmd.metadata.eventId} is already known with other content`);
  }
}

async function effect(cmd) {
  return store.withEntity(cmd.entity.id, async (current) => {
    const applied = (current && current.applied) || {};
    if (!cfg.broken.has('skip-dedup') && applied[cmd.metadata.eventId]) {
      log(`duplicate ${cmd.metadata.eventId}: republishing its ${applied[cmd.metadata.eventId].length} events`);
      return { next: null, result: applied[cmd.metadata.eventId] };
    }
    try {
      const { state, order, events } = decide(cmd, current);
      const next = { state, order, lastSeq: cmd.metadata.sequenceNo, applied: { ...applied, [cmd.metadata.eventId]: events } };
      return { next, result: events };
    } catch (err) {
      if (!(err instanceof BusinessFailure)) throw err;
      return { next: null, result: err }; // nothing written: handle() retries or dead-letters it
    }
  });
}

// A business failure's final attempt is recorded as failed -- never as applied (contract v1.3
// section 6, decision D24): a dead-lettered command is no effect, so the same command replayed from
// the DLQ once its cause is fixed is decided again and takes effect once (its eventId stays claimed
// by its content, so other content under that id is still an IdempotencyConflict).
async function recordFailed(cmd) {
  await store.withEntity(cmd.entity.id, async (current) => {
    const failed = (current && current.failed) || {};
    return { next: { ...(current || { state: null, lastSeq: 0 }), failed: { ...failed, [cmd.metadata.eventId]: true } }, result: null };
  });
}

async function publish(event) {
  const s = (v) => ({ DataType: 'String', StringValue: String(v) });
  const attrs = { EventType: s(event.name), EventName: s(event.name), EntityId: s(event.entity.id),
    SequenceNo: s(event.metadata.sequenceNo), CorrelationId: s(event.metadata.correlationId), EventId: s(event.metadata.eventId) };
  let body = json.stringify(event); // exact 64-bit integers (sequenceNo, amounts)
  if (cfg.kmsKeyId && !cfg.broken.has('plaintext-events')) {
    const ctx = env.context(event.metadata.eventId, topicName, event.entity.id, event.name);
    const dk = await kmsSend(new GenerateDataKeyCommand({ KeyId: cfg.kmsKeyId, KeySpec: 'AES_256', EncryptionContext: ctx }));
    const key = Buffer.from(dk.Plaintext);
    // KeyId in the envelope and the AAD = the key id KMS reports (its ARN), as the reference writes it
    try { body = env.toBody(env.sealWithKey(key, Buffer.from(dk.CiphertextBlob), dk.KeyId, ctx, Buffer.from(body, 'utf8'))); } finally { key.fill(0); }
    attrs.Encryption = s(env.SCHEME);
  }
  // MessageDeduplicationId = the event id: a re-publish (duplicate, redelivery) is dropped by the FIFO topic
  const dedupId = cfg.broken.has('unstable-dedup-id') ? crypto.randomUUID() : event.metadata.eventId;
  await sns.send(new PublishCommand({ TopicArn: cfg.topicArn, Message: body, Subject: event.name, MessageAttributes: attrs,
    MessageGroupId: event.entity.id, MessageDeduplicationId: dedupId }));
}

// Make a message visible again at once (a retry, or a message released on SIGTERM); failures logged.
async function release(msg) {
  try {
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: cfg.queueUrl, ReceiptHandle: msg.ReceiptHandle, VisibilityTimeout: 0 }));
  } catch (err) {
    log(`release of ${msg.MessageId} failed (${err.name}); it comes back after its visibility timeout`);
  }
}

// Forward to the DLQ: same body and group, the original attributes + DeadLetterReason (+ the source
// message id while under SQS's 10-attribute limit), deduplicated by the source MessageId. Throws if
// the send fails (the caller then leaves the message for redelivery).
async function forwardToDlq(msg, reason) {
  const attrs = { ...(msg.MessageAttributes || {}) };
  attrs.DeadLetterReason = { DataType: 'String', StringValue: reason.slice(0, 1000) };
  if (Object.keys(attrs).length < 10) attrs.DeadLetterSourceMessageId = { DataType: 'String', StringValue: msg.MessageId };
  const fifo = cfg.dlqUrl.endsWith('.fifo');
  // contract v1.4 section 6: the source's MessageGroupId (requested from ReceiveMessage); the broken
  // variant forwards as if it had not been requested
  const group = cfg.broken.has('dead-letter-group-lost') ? 'poison' : msg.Attributes && msg.Attributes.MessageGroupId;
  await sqs.send(new SendMessageCommand({ QueueUrl: cfg.dlqUrl, MessageBody: msg.Body || ' ', MessageAttributes: attrs,
    ...(fifo ? { MessageGroupId: group || 'poison', MessageDeduplicationId: msg.MessageId } : {}) }));
  log(`dead-lettered ${msg.MessageId}: ${reason}`);
}

async function deadLetter(msg, err, receiveCount) {
  if (cfg.broken.has('drop-poison')) { await del(msg); return; }
  if (receiveCount < cfg.maxReceive || !cfg.dlqUrl) {
    await release(msg); // not yet: visible again at once (the contract's receive-count rule still holds)
    return;
  }
  await forwardToDlq(msg, `${err.reason}: ${err.message}`);
  await del(msg);
}

// A business failure (invalid transition) is retried like poison: released until the receive where
// ApproximateReceiveCount >= FLOWGATE_MAX_RECEIVE_COUNT, then forwarded to the DLQ with
// DeadLetterReason "BusinessError: <detail>", recorded as failed (not applied: D24) and deleted.
async function businessFailure(msg, cmd, err, receiveCount) {
  if (receiveCount < cfg.maxReceive) {
    log(`business failure on ${cmd.metadata.eventId} (receive ${receiveCount}), retried: ${err.message}`);
    await release(msg);
    return false;
  }
  if (cfg.dlqUrl) await forwardToDlq(msg, `BusinessError: ${err.message}`);
  else log(`business failure on ${cmd.metadata.eventId}, no DLQ configured: acknowledged: ${err.message}`);
  await recordFailed(cmd);
  await del(msg);
  return true;
}

async function del(msg) {
  try {
    await sqs.send(new DeleteMessageCommand({ QueueUrl: cfg.queueUrl, ReceiptHandle: msg.ReceiptHandle }));
  } catch (err) { // a stale receipt handle after a visibility expiry: another consumer owns it now
    log(`delete of ${msg.MessageId} failed (${err.name}); the redelivery will be recognised as a duplicate`);
  }
}

// Keeps one message in hand invisible: ChangeMessageVisibility(VT) every VT/2 until stop() (which
// waits for an extension still in flight, so a later release is not undone by it). A failed
// extension is logged (the message may then be redelivered elsewhere; the effect is idempotent).
function heartbeat(msg) {
  if (cfg.broken.has('no-heartbeat')) return { stop: async () => {} };
  let stopped = false;
  let pending = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    pending = sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: cfg.queueUrl, ReceiptHandle: msg.ReceiptHandle,
      VisibilityTimeout: cfg.heartbeatSeconds }))
      .catch((err) => log(`heartbeat for ${msg.MessageId} failed: ${err.name} ${err.message}`));
  }, cfg.heartbeatSeconds * 500);
  timer.unref();
  return { stop: async () => { stopped = true; clearInterval(timer); await pending; } };
}

// One message: true when it is finished (deleted), false when the rest of its group must wait.
// The heartbeat runs until the message is released or deleted.
async function handle(msg, beat) {
  // contract v1.4 section 1: ApproximateReceiveCount is requested from ReceiveMessage (the broken
  // variant reads it as if it had not been: always the first receive)
  const counted = !cfg.broken.has('no-receive-count') && msg.Attributes && msg.Attributes.ApproximateReceiveCount;
  const receiveCount = parseInt(counted || '1', 10);
  let cmd;
  try {
    cmd = await decodeCommand(msg);
    await claim(cmd);
  } catch (err) {
    if (!(err instanceof Poison)) throw err;
    await beat.stop();
    await deadLetter(msg, err, receiveCount);
    return false;
  }
  if (cfg.delayMs > 0) await sleep(cfg.delayMs);
  const outcome = await effect(cmd);
  if (outcome instanceof BusinessFailure) {
    await beat.stop();
    return businessFailure(msg, cmd, outcome, receiveCount);
  }
  for (const event of outcome) await publish(event);
  await beat.stop();
  await del(msg);
  return true;
}

// One message group of a receive, strictly in order. After a failure the rest of the group is left
// alone (it becomes visible again after the failed one, keeping FIFO order). Once SIGTERM has come,
// no further message is started, and whatever is still in hand when the group stops (the messages
// not started, one that failed transiently) is released (visible again at once), so nothing
// received stays invisible after the exit.
async function handleGroup(msgs) {
  const beats = msgs.map((msg) => heartbeat(msg)); // every message in hand, from its receipt
  let next = 0; // the first message neither finished nor released/dead-lettered
  try {
    for (; next < msgs.length && running; next++) {
      let done = false;
      let failed = false;
      try {
        done = await handle(msgs[next], beats[next]);
      } catch (err) {
        failed = true;
        log(`transient failure on ${msgs[next].MessageId}: ${err.name} ${err.message}`);
        trip(err);
      }
      if (!done) {
        if (!failed) next++; // released or dead-lettered by handle(): no longer in hand
        break;
      }
    }
  } finally {
    await Promise.all(beats.map((b) => b.stop()));
  }
  if (!running && next < msgs.length && !cfg.broken.has('no-release-on-sigterm')) {
    for (const msg of msgs.slice(next)) await release(msg);
    log(`stopping: released ${msgs.length - next} message(s) still in hand`);
  }
}

let running = true;
let inFlight = Promise.resolve();
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (cfg.broken.has('ignore-sigterm')) { log(`${sig} ignored (FLOWGATE_BROKEN=ignore-sigterm)`); return; }
    log(`${sig}: finishing in-flight messages`); running = false;
  });
}

async function main() {
  console.log(`flowgate-ready ${JSON.stringify({ impl: 'node-worker', instance: cfg.instance, queue: queueName })}`);
  while (running) {
    await waitClosed();
    if (!running) break;
    let resp;
    try {
      resp = await sqs.send(new ReceiveMessageCommand({ QueueUrl: cfg.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: cfg.waitSeconds,
        VisibilityTimeout: cfg.visibility, AttributeNames: ['All'], MessageAttributeNames: ['All'] }));
    } catch (err) { log(`receive failed: ${err.name} ${err.message}`); await sleep(500); continue; }
    const groups = new Map();
    for (const msg of resp.Messages || []) {
      const g = (msg.Attributes && msg.Attributes.MessageGroupId) || msg.MessageId;
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(msg);
    }
    // groups in parallel, each group strictly in order (handleGroup)
    inFlight = Promise.all([...groups.values()].map((msgs) => handleGroup(msgs)));
    await inFlight;
  }
  log('stopped');
  process.exit(0);
}

main().catch((err) => { log(`fatal: ${err.stack}`); process.exit(1); });
