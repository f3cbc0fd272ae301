'use strict';
// Strict JSON (contract v1.2 decode rules, docs/hostile.md): RFC 8259 only -- no BOM, no trailing
// data, no NaN/Infinity, no duplicate keys, at most MAX_DEPTH nested containers (checked while
// parsing, so a hostile body never exhausts the stack), no NUL and no lone surrogate in any string
// or key, every integer a signed 64-bit value (kept exact: a BigInt when it exceeds 2^53), every
// float finite (a JFloat, so 1.0 is told from 1). stringify() writes BigInt and JFloat back exactly.

const MAX_DEPTH = 16;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

class JsonError extends Error {}
class JFloat { constructor(text) { this.text = text; this.value = Number(text); } }

function parse(text, maxDepth = MAX_DEPTH) {
  let i = 0;
  const fail = (why) => { throw new JsonError(`${why} at offset ${i}`); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  function value(depth) {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth + 1 > maxDepth) fail(`nested deeper than ${maxDepth}`);
      return c === '{' ? object(depth + 1) : array(depth + 1);
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(lit, i)) { i += lit.length; return v; }
    }
    return fail(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
  }
  function object(depth) {
    i++;
    const out = {};
    const seen = new Set();
    ws();
    if (text[i] === '}') { i++; return out; }
    for (;;) {
      ws();
      if (text[i] !== '"') fail('expected a key');
      const key = string();
      if (seen.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
      seen.add(key);
      ws();
      if (text[i] !== ':') fail('expected :');
      i++;
      Object.defineProperty(out, key, { value: value(depth), enumerable: true, writable: true, configurable: true });
      ws();
      if (text[i] === ',') { i++; continue; }
      if (text[i] === '}') { i++; return out; }
      fail('expected , or }');
    }
  }
  function array(depth) {
    i++;
    const out = [];
    ws();
    if (text[i] === ']') { i++; return out; }
    for (;;) {
      out.push(value(depth));
      ws();
      if (text[i] === ',') { i++; continue; }
      if (text[i] === ']') { i++; return out; }
      fail('expected , or ]');
    }
  }
  function string() {
    i++;
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i];
      const code = c.charCodeAt(0);
      if (c === '"') { i++; break; }
      if (code < 0x20) fail('control character in a string');
      if (c === '\\') {
        const e = text[i + 1];
        const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) { out += simple[e]; i += 2; continue; }
        if (e !== 'u' || !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('bad escape');
        out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
        continue;
      }
      out += c;
      i++;
    }
    if (out.includes('\u0000')) fail('NUL in a string');
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(out)) fail('lone surrogate');
    return out;
  }
  function number() {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail('bad number');
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = BigInt(m[0]);
      if (n < INT64_MIN || n > INT64_MAX) fail('integer outside signed 64 bits');
      return Number.isSafeInteger(Number(n)) ? Number(n) : n;
    }
    const f = new JFloat(m[0]);
    if (!Number.isFinite(f.value)) fail('number not finite');
    return f;
  }
  if (text.charCodeAt(0) === 0xfeff) fail('byte order mark');
  const result = value(0);
  ws();
  if (i !== text.length) fail('trailing data');
  return result;
}

function stringify(v) {
  return JSON.stringify(v, (k, x) => {
    if (typeof x === 'bigint') return `\u0000N:${x}`;
    if (x instanceof JFloat) return `\u0000N:${x.text}`;
    return x;
  }).replace(/"\\u0000N:([^"]*)"/g, '$1');
}

const isInt = (v) => (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';

module.exports = { parse, stringify, isInt, JsonError, JFloat, MAX_DEPTH };
