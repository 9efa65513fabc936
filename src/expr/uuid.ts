import { clock } from './clock.ts';
import { fail } from './errors.ts';
import { sha1Into } from './sha1.ts';

/**
 * Namespace of `uuid_v5(name)`. Fixed forever: changing it would change every id that
 * pipelines have already derived from record data.
 */
export const SLUICE_NAMESPACE = 'dcd8fece-2943-42bd-a200-3d9bc10fdc51';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const namespaceCache = new Map<string, Buffer>();

function namespaceBytes(ns: string): Buffer {
  let bytes = namespaceCache.get(ns);
  if (bytes) return bytes;
  if (!UUID_RE.test(ns)) throw fail('invalid_argument', `uuid_v5: namespace '${ns}' is not a UUID`);
  bytes = Buffer.from(ns.replaceAll('-', ''), 'hex');
  if (namespaceCache.size >= 64) namespaceCache.clear();
  namespaceCache.set(ns, bytes);
  return bytes;
}

// Namespace and name are laid out in one reused buffer and hashed into another: nothing is
// allocated per id but the id's own string.
let input = Buffer.allocUnsafe(256);
const digest = new Uint8Array(20);
const text = Buffer.allocUnsafe(36);

/** RFC 9562 version 5 (SHA-1, name based) UUID. */
export function uuidV5(name: string, namespace: string = SLUICE_NAMESPACE): string {
  const ns = namespaceBytes(namespace);
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  if (input.length < 16 + name.length * 3) input = Buffer.allocUnsafe(16 + name.length * 3);
  ns.copy(input, 0);
  const n = input.write(name, 16, 'utf8');
  sha1Into(input, 16 + n, digest);
  digest[6] = (digest[6] & 0x0f) | 0x50;
  digest[8] = (digest[8] & 0x3f) | 0x80;
  return formatUuid(digest);
}

const HEX = '0123456789abcdef';

/**
 * Writes the 36 characters into one buffer and reads them as one flat string, where joined
 * slices would keep a rope of five pieces (about four times the memory in a dedup map holding
 * millions of ids).
 */
function formatUuid(bytes: Uint8Array): string {
  let j = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[j++] = 0x2d;
    text[j++] = HEX.charCodeAt(bytes[i] >> 4);
    text[j++] = HEX.charCodeAt(bytes[i] & 15);
  }
  return text.toString('latin1', 0, 36);
}

export function uuidV4(): string {
  return clock().uuid();
}
