'use strict';
// Deterministic event ids (contract section 3).
const crypto = require('node:crypto');

// uuid5(namespace, name) as Python's uuid.uuid5; a non-UUID command id is first mapped with NAMESPACE_URL
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
function uuid5(nsHex, name) {
  const h = crypto.createHash('sha1').update(Buffer.from(nsHex.replace(/-/g, ''), 'hex')).update(Buffer.from(name, 'utf8')).digest();
  h[6] = (h[6] & 0x0f) | 0x50; h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
function derivedEventId(commandId, index, name) {
  const ns = UUID_RE.test(commandId) ? commandId : uuid5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', commandId);
  return uuid5(ns, `${index}:${name}`);
}

module.exports = { uuid5, derivedEventId };
