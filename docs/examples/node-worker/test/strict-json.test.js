'use strict';
// lib/strict-json.js against the contract v1.2 decode rules (docs/contract.md section 2).
const { test } = require('node:test');
const assert = require('node:assert');
const json = require('../lib/strict-json');

test('refuses what the decode rules refuse', () => {
  const bad = {
    'trailing data': '{} {}',
    'duplicate key': '{"a":1,"a":2}',
    'byte order mark': '\ufeff{}',
    'NaN literal': '{"a":NaN}',
    'infinite number': '{"a":1e999}',
    'integer over int64': '{"a":9223372036854775808}',
    'integer under int64': '{"a":-9223372036854775809}',
    'NUL in a string': '{"a":"x\\u0000"}',
    'NUL in a key': '{"x\\u0000":1}',
    'lone high surrogate': '{"a":"\\ud800"}',
    'lone low surrogate': '{"a":"\\udc00x"}',
    'single quotes': "{'a':1}",
    'trailing comma': '{"a":1,}',
    comment: '{"a":1 /* c */}',
    'raw control character': '{"a":"\n"}',
    'too deep': `${'['.repeat(17)}${']'.repeat(17)}`,
  };
  for (const [why, text] of Object.entries(bad)) {
    assert.throws(() => json.parse(text), json.JsonError, why);
  }
});

test('accepts what they accept, exactly', () => {
  assert.deepStrictEqual(json.parse(' {"a": [true, false, null], "b": "\\u00e9\\ud83d\\ude00"} '),
    { a: [true, false, null], b: 'é😀' });
  assert.strictEqual(json.parse(`${'['.repeat(16)}${']'.repeat(16)}`).length, 1);
  const big = json.parse('{"seq":9223372036854775807,"n":5,"f":1.0}');
  assert.strictEqual(big.seq, 9223372036854775807n); // exact, not rounded to 2^63
  assert.strictEqual(big.n, 5);
  assert.ok(big.f instanceof json.JFloat); // 1.0 is not the integer 1
  assert.ok(!json.isInt(big.f));
  assert.strictEqual(json.stringify(big), '{"seq":9223372036854775807,"n":5,"f":1.0}');
  assert.deepStrictEqual(Object.keys(json.parse('{"__proto__":1}')), ['__proto__']);
});
