'use strict';
// node --test: the Node envelope against docs/vectors/envelope-v1.json (positive and negative).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const env = require('../lib/envelope');

const doc = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'vectors', 'envelope-v1.json'), 'utf8'));
const b = (s) => Buffer.from(s, 'base64');

test('the vectors describe the layout this worker implements', () => {
  assert.deepStrictEqual(doc.aadFields, env.AAD_FIELDS);
  assert.deepStrictEqual(doc.contextFields, env.CONTEXT_FIELDS);
});

for (const vec of doc.vectors) {
  test(`${vec.result} ${vec.name}`, () => {
    // the consumer's AAD: its expected context plus the envelope's key id
    assert.deepStrictEqual(env.aad(vec.context, vec.keyId), b(vec.aad), 'AAD encoding');
    const open = () => env.openWithKey(b(vec.dataKey), env.fromBody(vec.body), vec.context);
    if (vec.result === 'accept') {
      assert.strictEqual(open().toString('utf8'), vec.plaintext);
      const again = env.sealWithKey(b(vec.dataKey), b(vec.encryptedDataKey), vec.keyId, vec.context,
        Buffer.from(vec.plaintext, 'utf8'), b(vec.nonce));
      assert.strictEqual(again.ciphertext.toString('base64'), vec.ciphertext);
      assert.strictEqual(again.tag.toString('base64'), vec.tag);
      assert.strictEqual(env.toBody(again), vec.body, 'byte-identical envelope (field order, encoding)');
    } else {
      assert.throws(open, env.EnvelopeError);
    }
  });
}
