'use strict';
// The flowgate contract v1 envelope ("kms-aes256gcm-v1"), from docs/contract.md section 5.
const crypto = require('node:crypto');

const SCHEME = 'kms-aes256gcm-v1';
const AAD_FIELDS = ['flowgate:version', 'messageId', 'destination', 'entityId', 'messageType'];

class EnvelopeError extends Error {}

function context(messageId, destination, entityId, messageType) {
  return { 'flowgate:version': '1', messageId, destination, entityId, messageType };
}

// uint32 big-endian byte length + UTF-8 bytes, for each field in AAD_FIELDS order
function aad(ctx) {
  const parts = [];
  for (const key of AAD_FIELDS) {
    const raw = Buffer.from(String(ctx[key]), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(raw.length);
    parts.push(len, raw);
  }
  return Buffer.concat(parts);
}

function sealWithKey(dataKey, encryptedDataKey, keyId, ctx, plaintext, nonce = crypto.randomBytes(12)) {
  const cipher = crypto.createCipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: 16 });
  cipher.setAAD(aad(ctx));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId, encryptedDataKey, nonce, tag: cipher.getAuthTag(), ciphertext };
}

function openWithKey(dataKey, sealed, ctx) {
  if (sealed.nonce.length !== 12 || sealed.tag.length !== 16) throw new EnvelopeError('nonce must be 12 bytes, tag 16');
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', dataKey, sealed.nonce, { authTagLength: 16 });
    decipher.setAAD(aad(ctx));
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch (err) {
    throw new EnvelopeError(`AES-GCM authentication failed: ${err.message}`);
  }
}

function toBody(sealed) {
  const doc = {
    Version: 1,
    KeyId: sealed.keyId,
    EncryptedDataKey: Buffer.from(sealed.encryptedDataKey).toString('base64'),
    Nonce: sealed.nonce.toString('base64'),
    Tag: sealed.tag.toString('base64'),
    Ciphertext: sealed.ciphertext.toString('base64'),
  };
  return Buffer.from(JSON.stringify(doc), 'utf8').toString('base64');
}

function fromBody(body) {
  let doc;
  try {
    doc = JSON.parse(Buffer.from(body, 'base64').toString('utf8'));
  } catch (err) {
    throw new EnvelopeError(`malformed envelope: ${err.message}`);
  }
  if (!doc || doc.Version !== 1) throw new EnvelopeError('unsupported envelope version');
  for (const f of ['KeyId', 'EncryptedDataKey', 'Nonce', 'Tag', 'Ciphertext']) {
    if (typeof doc[f] !== 'string') throw new EnvelopeError(`envelope lacks ${f}`);
  }
  return {
    keyId: doc.KeyId,
    encryptedDataKey: Buffer.from(doc.EncryptedDataKey, 'base64'),
    nonce: Buffer.from(doc.Nonce, 'base64'),
    tag: Buffer.from(doc.Tag, 'base64'),
    ciphertext: Buffer.from(doc.Ciphertext, 'base64'),
  };
}

module.exports = { SCHEME, AAD_FIELDS, EnvelopeError, context, aad, sealWithKey, openWithKey, toBody, fromBody };
