/**
 * SHA-1 (FIPS 180-4) of a short byte string, written out for `uuid_v5`. Written by hand because
 * what uuid_v5 hashes is short (a 16-byte namespace and a name of some tens of bytes: one to three
 * 64-byte blocks), where node:crypto's per-call cost (an OpenSSL context, a result Buffer)
 * outweighs the hashing itself: this is 2-3 times faster per id (bench/expr.bench.ts has the
 * figure). Long inputs do not come here. The result goes into `out` (20 bytes); nothing is
 * allocated per call.
 */

const W = new Int32Array(80);

/** Hashes `data[0, length)` into `out[0, 20)`. */
export function sha1Into(data: Uint8Array, length: number, out: Uint8Array): void {
  let h0 = 0x67452301;
  let h1 = 0xefcdab89 | 0;
  let h2 = 0x98badcfe | 0;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0 | 0;
  // Message + 0x80 + zeros + 64-bit big-endian bit length, in whole blocks.
  const blocks = ((length + 8) >>> 6) + 1;
  const w = W;
  for (let b = 0; b < blocks; b++) {
    const base = b * 64;
    for (let i = 0; i < 16; i++) {
      let word = 0;
      for (let k = 0; k < 4; k++) word = (word << 8) | byteAt(data, length, blocks, base + i * 4 + k);
      w[i] = word;
    }
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0;
    let bb = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let i = 0; i < 80; i++) {
      let f: number;
      let k: number;
      if (i < 20) {
        f = (bb & c) | (~bb & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = bb ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (bb & c) | (bb & d) | (c & d);
        k = 0x8f1bbcdc | 0;
      } else {
        f = bb ^ c ^ d;
        k = 0xca62c1d6 | 0;
      }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) | 0;
      e = d;
      d = c;
      c = (bb << 30) | (bb >>> 2);
      bb = a;
      a = t;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + bb) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  put(out, 0, h0);
  put(out, 4, h1);
  put(out, 8, h2);
  put(out, 12, h3);
  put(out, 16, h4);
}

/** Byte `at` of the padded message. */
function byteAt(data: Uint8Array, length: number, blocks: number, at: number): number {
  if (at < length) return data[at];
  if (at === length) return 0x80;
  const end = blocks * 64;
  if (at < end - 8) return 0;
  // The bit length, big-endian in the last 8 bytes (inputs here are far below 2^29 bytes).
  const shift = (end - 1 - at) * 8;
  const bits = length * 8;
  return shift >= 32 ? 0 : (bits >>> shift) & 0xff;
}

function put(out: Uint8Array, at: number, word: number): void {
  out[at] = word >>> 24;
  out[at + 1] = (word >>> 16) & 0xff;
  out[at + 2] = (word >>> 8) & 0xff;
  out[at + 3] = word & 0xff;
}
