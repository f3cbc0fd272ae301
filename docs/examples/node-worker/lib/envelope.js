'use strict';
const strictJson = require('./strict-json');
// strict UTF-8 (a BOM is kept, and refused by the parser)
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// The flowgate contract v1 envelope ("kms-aes256gcm-v1"), from docs/contract.md section 5.
const crypto = require('node:crypto');

const SCHEME = 'kms-aes256gcm-v1';
// KMS encryption context keys (no key id: KMS binds the key itself)
const CONTEXT_FIELDS = ['flowgate:version', 'messageId', 'destination', 'entityId', 'messageType'];
// AAD fields in order; keyId = the envelope's KeyId, the others = the expected context's values
const AAD_FIELDS = ['flowgate:version', 'keyId', 'destination', 'messageId', 'entityId', 'messageType'];

class EnvelopeError extends Error {}

function context(messageId, destination, entityId, messageType) {
  return { 'flowgate:version': '1', messageId, destination, entityId, messageType };
}

// contract v1.4: the KMS context of a data key a caching producer shares between the messages for one
// destination (the AAD still binds each message: aad() below is the same for both contexts)
function destinationContext(destination) {
  return { 'flowgate:version': '1', destination };
}

// uint32 big-endian byte length + UTF-8 bytes, for each field in AAD_FIELDS order
function aad(ctx, keyId) {
  const values = { ...ctx, keyId };
  const parts = [];
  for (const key of AAD_FIELDS) {
    const raw = Buffer.from(String(values[key]), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(raw.length);
    parts.push(len, raw);
  }
  return Buffer.concat(parts);
}

function sealWithKey(dataKey, encryptedDataKey, keyId, ctx, plaintext, nonce = crypto.randomBytes(12)) {
  const cipher = crypto.createCipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: 16 });
  cipher.setAAD(aad(ctx, keyId));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId, destination: ctx.destination, encryptedDataKey, nonce, tag: cipher.getAuthTag(), ciphertext };
}

// ctx = what the consumer expects (its own queue/topic, the attributes), never read from the envelope
function openWithKey(dataKey, sealed, ctx) {
  if (sealed.destination !== ctx.destination) {
    throw new EnvelopeError(`envelope is for ${sealed.destination}, not ${ctx.destination}`);
  }
  if (sealed.nonce.length !== 12 || sealed.tag.length !== 16) throw new EnvelopeError('nonce must be 12 bytes, tag 16');
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', dataKey, sealed.nonce, { authTagLength: 16 });
    decipher.setAAD(aad(ctx, sealed.keyId));
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch (err) {
    throw new EnvelopeError(`AES-GCM authentication failed: ${err.message}`);
  }
}

// Field order and compact JSON exactly as the reference writes them.
function toBody(sealed) {
  const doc = {
    Version: 1,
    KeyId: sealed.keyId,
    Destination: sealed.destination,
    EncryptedDataKey: Buffer.from(sealed.encryptedDataKey).toString('base64'),
    Nonce: sealed.nonce.toString('base64'),
    Tag: sealed.tag.toString('base64'),
    Ciphertext: sealed.ciphertext.toString('base64'),
  };
  return Buffer.from(JSON.stringify(doc), 'utf8').toString('base64');
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fromBody(body) {
  let doc;
  try {
    if (!B64.test(body || '')) throw new Error('body is not base64');
    doc = strictJson.parse(utf8.decode(Buffer.from(body, 'base64'))); // depth-limited, no duplicate keys
  } catch (err) {
    throw new EnvelopeError(`malformed envelope: ${err.message}`);
  }
  if (!doc || doc.Version !== 1) throw new EnvelopeError('unsupported envelope version');
  for (const f of ['KeyId', 'Destination', 'EncryptedDataKey', 'Nonce', 'Tag', 'Ciphertext']) {
    if (typeof doc[f] !== 'string') throw new EnvelopeError(`envelope lacks ${f}`);
  }
  for (const f of ['EncryptedDataKey', 'Nonce', 'Tag', 'Ciphertext']) {
    if (!B64.test(doc[f])) throw new EnvelopeError(`envelope ${f} is not base64`);
  }
  const sealed = {
    keyId: doc.KeyId,
    destination: doc.Destination,
    encryptedDataKey: Buffer.from(doc.EncryptedDataKey, 'base64'),
    nonce: Buffer.from(doc.Nonce, 'base64'),
    tag: Buffer.from(doc.Tag, 'base64'),
    ciphertext: Buffer.from(doc.Ciphertext, 'base64'),
  };
  if (sealed.nonce.length !== 12 || sealed.tag.length !== 16) throw new EnvelopeError('nonce must be 12 bytes, tag 16');
  return sealed;
}

module.exports = { SCHEME, CONTEXT_FIELDS, AAD_FIELDS, EnvelopeError, context, destinationContext, aad, sealWithKey, openWithKey, toBody, fromBody };
