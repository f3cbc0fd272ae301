'use strict';
// Entity state + idempotency in one record per entity, so the effect and its dedup key commit
// together (one atomic rename). FLOWGATE_IDEMPOTENCY_URL:
//   file:///some/dir  durable, shared by every instance on the host (what the chaos profile needs)
//   memory:           per process; exactly-once is then lost across restarts (chaos will say so)
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const json = require('./strict-json'); // exact 64-bit integers in the records

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class MemoryStore {
  constructor() { this.entities = new Map(); this.claims = new Map(); }
  // The fingerprint an eventId is claimed with: the first claim wins; returns the winner's.
  async claim(eventId, fp) {
    if (!this.claims.has(eventId)) this.claims.set(eventId, fp);
    return this.claims.get(eventId);
  }
  async withEntity(id, fn) {
    const current = this.entities.get(id) || null;
    const { next, result } = await fn(current);
    if (next) this.entities.set(id, next);
    return result;
  }
}

class FileStore {
  constructor(dir) {
    this.dir = dir;
    fs.mkdirSync(path.join(dir, 'entities'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'locks'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'claims'), { recursive: true });
  }
  // One file per eventId holding the fingerprint of the first content seen with it, created with
  // O_EXCL through a rename of a complete temp file (link fails if it exists): exactly one wins.
  async claim(eventId, fp) {
    const file = path.join(this.dir, 'claims', `${FileStore.key(eventId)}.fp`);
    const tmp = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`;
    fs.writeFileSync(tmp, fp);
    try { fs.linkSync(tmp, file); } catch (err) { if (err.code !== 'EEXIST') throw err; } finally { fs.rmSync(tmp, { force: true }); }
    return fs.readFileSync(file, 'utf8');
  }
  // file names from a hash: ids are up to 128 characters of ASCII punctuation (URL-encoded, that
  // could pass the 255-byte file-name limit)
  static key(id) { return crypto.createHash('sha256').update(id, 'utf8').digest('hex'); }
  file(id) { return path.join(this.dir, 'entities', `${FileStore.key(id)}.json`); }
  async lock(id) {
    const lockDir = path.join(this.dir, 'locks', `${FileStore.key(id)}.lock`);
    for (;;) {
      try {
        fs.mkdirSync(lockDir); // atomic: exactly one process succeeds
        return () => fs.rmSync(lockDir, { recursive: true, force: true });
      } catch (err) {
        if (err.code !== 'EEXIST') throw err;
        try { // a holder killed with SIGKILL leaves its lock: break it after 15 s
          if (Date.now() - fs.statSync(lockDir).mtimeMs > 15000) fs.rmSync(lockDir, { recursive: true, force: true });
        } catch { /* raced with its release */ }
        await sleep(15);
      }
    }
  }
  async withEntity(id, fn) {
    const release = await this.lock(id);
    try {
      let current = null;
      try { current = json.parse(fs.readFileSync(this.file(id), 'utf8'), 64); } catch (err) { if (err.code !== 'ENOENT') throw err; }
      const { next, result } = await fn(current);
      if (next) {
        const tmp = `${this.file(id)}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, json.stringify(next));
        fs.renameSync(tmp, this.file(id));
      }
      return result;
    } finally {
      release();
    }
  }
}

function openStore(url) {
  if (!url || url === 'memory:' || url.startsWith('memory')) return new MemoryStore();
  if (url.startsWith('file://')) return new FileStore(new URL(url).pathname);
  throw new Error(`unsupported FLOWGATE_IDEMPOTENCY_URL ${url} (use file:///dir or memory:)`);
}

module.exports = { openStore };
