/**
 * The key cache of the memory and file stores in flat memory: each key is kept as a 128-bit
 * hash in typed arrays, never as a JS string in a Map, so millions of keys cost a fixed 28
 * bytes each (hash 16, time 4, LRU links 8) plus 4 to 11 bytes of index (an open-addressing
 * table of 32-bit slots, at most three quarters full): 5M keys take about 170 MB outside the
 * V8 heap, against about 600 MB as strings in a Map, and the garbage collector never walks them.
 *
 * Two different keys share a hash with probability about n² / 2^129 among n keys (MurmurHash3
 * x86_128 with a random seed per process, so keys cannot be chosen to collide): for 5 million
 * keys about 4·10^-26. A collision would make a first record look like a duplicate of another.
 *
 * Times are 32-bit counts of a unit of max(1 ms, ttl / 2^30) since a base that moves forward
 * when they would overflow, so expiry is exact to the millisecond for any ttl up to 12 days.
 */
import { randomBytes } from 'node:crypto';
import type { KeyCache } from './store.ts';

const NONE = -1;
const MAX_LOAD = 0.75;

export class KeyTable implements KeyCache {
  readonly #maxKeys: number;
  readonly #unit: number;
  readonly #ttl: number;
  #base: number;

  // Entries, by index: hash words, time, least-recently-used list links.
  readonly #hash: Uint32Array;
  readonly #at: Int32Array;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  #head = NONE; // least recently used
  #tail = NONE; // most recently used
  #free = NONE; // entries released by forget or eviction, linked through #next
  #used = 0; // entries ever handed out
  #count = 0;

  // Index: slot → entry + 1 (0 is empty), linear probing from the hash's low bits.
  #slots: Int32Array;
  #mask: number;

  readonly #seed = randomBytes(4).readUInt32LE(0);
  readonly #h = new Uint32Array(4);
  evictions = 0;

  constructor(maxKeys: number, ttl: number) {
    this.#maxKeys = Math.max(1, Math.floor(maxKeys));
    this.#unit = Math.max(1, Math.ceil(ttl / 2 ** 30));
    this.#ttl = Math.ceil(ttl / this.#unit);
    this.#base = Date.now();
    // Entries are handed out in order, so untouched pages of these arrays cost no memory.
    this.#hash = new Uint32Array(this.#maxKeys * 4);
    this.#at = new Int32Array(this.#maxKeys);
    this.#prev = new Int32Array(this.#maxKeys);
    this.#next = new Int32Array(this.#maxKeys);
    const slots = tableSize(Math.min(this.#maxKeys, 4096));
    this.#slots = new Int32Array(slots);
    this.#mask = slots - 1;
  }

  get size(): number {
    return this.#count;
  }

  /** Whether `key` was remembered within ttl; touching it makes it the most recently used. */
  seen(key: string, now: number): boolean {
    const slot = this.#find(key);
    if (slot < 0) return false;
    const e = this.#slots[slot] - 1;
    if (this.#time(now) - this.#at[e] > this.#ttl) {
      this.#remove(slot, e);
      return false;
    }
    this.#unlink(e);
    this.#append(e);
    return true;
  }

  /** Remembers `key` as of `now` (a key already present keeps its place and takes the new time). */
  remember(key: string, now: number): void {
    const t = this.#time(now);
    const slot = this.#find(key);
    if (slot >= 0) {
      this.#at[this.#slots[slot] - 1] = t;
      return;
    }
    if (this.#count >= this.#maxKeys) {
      const oldest = this.#head;
      this.#remove(this.#slotOf(oldest), oldest);
      this.evictions++;
    }
    if (this.#count + 1 > this.#slots.length * MAX_LOAD) this.#grow();
    const e = this.#allocate();
    const h = this.#h; // still the hash of `key`, from #find
    this.#hash[e * 4] = h[0];
    this.#hash[e * 4 + 1] = h[1];
    this.#hash[e * 4 + 2] = h[2];
    this.#hash[e * 4 + 3] = h[3];
    this.#at[e] = t;
    this.#append(e);
    this.#insertSlot(e);
    this.#count++;
  }

  forget(key: string): void {
    const slot = this.#find(key);
    if (slot >= 0) this.#remove(slot, this.#slots[slot] - 1);
  }

  /** Bytes held by the arrays that are in use (entries handed out and the index). */
  get bytes(): number {
    return this.#used * 28 + this.#slots.byteLength;
  }

  // ------------------------------------------------------------ time

  #time(now: number): number {
    let t = Math.floor((now - this.#base) / this.#unit);
    if (t > 2 ** 31 - 1) {
      this.#rebase(t);
      t = Math.floor((now - this.#base) / this.#unit);
    }
    return Math.max(t, -(2 ** 31));
  }

  /** Moves the base so that `t` fits again; entries that fall before it had expired and stay expired. */
  #rebase(t: number): void {
    const shift = t - this.#ttl - 1;
    this.#base += shift * this.#unit;
    for (let e = this.#head; e !== NONE; e = this.#next[e]) {
      const at = this.#at[e] - shift;
      this.#at[e] = Math.max(at, -1);
    }
  }

  // ------------------------------------------------------------ index

  /** Hashes `key` into #h and returns its slot, or -1. */
  #find(key: string): number {
    const h = this.#h;
    hash128(key, this.#seed, h);
    const words = this.#hash;
    const slots = this.#slots;
    const mask = this.#mask;
    for (let i = h[0] & mask; ; i = (i + 1) & mask) {
      const s = slots[i];
      if (s === 0) return -1;
      const w = (s - 1) * 4;
      if (words[w] === h[0] && words[w + 1] === h[1] && words[w + 2] === h[2] && words[w + 3] === h[3])
        return i;
    }
  }

  #slotOf(e: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let i = this.#hash[e * 4] & mask; ; i = (i + 1) & mask) {
      if (slots[i] === e + 1) return i;
    }
  }

  #insertSlot(e: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#hash[e * 4] & mask;
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = e + 1;
  }

  /** Empties slot `i` and shifts back the entries after it that probed past it (no tombstones). */
  #clearSlot(i: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let hole = i;
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const home = this.#hash[(slots[j] - 1) * 4] & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots[hole] = slots[j];
        hole = j;
      }
    }
    slots[hole] = 0;
  }

  #grow(): void {
    const size = this.#slots.length * 2;
    this.#slots = new Int32Array(size);
    this.#mask = size - 1;
    for (let e = this.#head; e !== NONE; e = this.#next[e]) this.#insertSlot(e);
  }

  // ------------------------------------------------------------ entries

  #allocate(): number {
    if (this.#free !== NONE) {
      const e = this.#free;
      this.#free = this.#next[e];
      return e;
    }
    return this.#used++;
  }

  #remove(slot: number, e: number): void {
    this.#clearSlot(slot);
    this.#unlink(e);
    this.#next[e] = this.#free;
    this.#free = e;
    this.#count--;
  }

  #append(e: number): void {
    this.#prev[e] = this.#tail;
    this.#next[e] = NONE;
    if (this.#tail === NONE) this.#head = e;
    else this.#next[this.#tail] = e;
    this.#tail = e;
  }

  #unlink(e: number): void {
    const p = this.#prev[e];
    const n = this.#next[e];
    if (p === NONE) this.#head = n;
    else this.#next[p] = n;
    if (n === NONE) this.#tail = p;
    else this.#prev[n] = p;
  }
}

function tableSize(keys: number): number {
  let size = 16;
  while (size * MAX_LOAD < keys) size *= 2;
  return size;
}

/**
 * MurmurHash3 x86_128 of the UTF-16 code units of `key` (two per 32-bit word), into `out`.
 * Code units rather than UTF-8: keys that differ only in lone surrogates stay distinct.
 */
export function hash128(key: string, seed: number, out: Uint32Array): void {
  let h1 = seed;
  let h2 = seed;
  let h3 = seed;
  let h4 = seed;
  const len = key.length;
  const blocks = len >> 3; // 8 code units = 16 bytes per block
  let i = 0;
  for (let b = 0; b < blocks; b++, i += 8) {
    let k1 = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
    let k2 = key.charCodeAt(i + 2) | (key.charCodeAt(i + 3) << 16);
    let k3 = key.charCodeAt(i + 4) | (key.charCodeAt(i + 5) << 16);
    let k4 = key.charCodeAt(i + 6) | (key.charCodeAt(i + 7) << 16);

    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  // The tail: up to 7 code units, in the words they would fill.
  const rest = len - i;
  if (rest > 0) {
    const u1 = rest > 1 ? key.charCodeAt(i + 1) : 0;
    const u3 = rest > 3 ? key.charCodeAt(i + 3) : 0;
    const u5 = rest > 5 ? key.charCodeAt(i + 5) : 0;
    if (rest > 6) h4 ^= Math.imul(rotl(Math.imul(key.charCodeAt(i + 6), C4), 18), C1);
    if (rest > 4) h3 ^= Math.imul(rotl(Math.imul(key.charCodeAt(i + 4) | (u5 << 16), C3), 17), C4);
    if (rest > 2) h2 ^= Math.imul(rotl(Math.imul(key.charCodeAt(i + 2) | (u3 << 16), C2), 16), C3);
    h1 ^= Math.imul(rotl(Math.imul(key.charCodeAt(i) | (u1 << 16), C1), 15), C2);
  }
  const bytes = len * 2;
  h1 ^= bytes;
  h2 ^= bytes;
  h3 ^= bytes;
  h4 ^= bytes;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  out[0] = h1;
  out[1] = h2;
  out[2] = h3;
  out[3] = h4;
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789 | 0;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
