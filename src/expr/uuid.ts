import { createHash, randomUUID } from 'node:crypto';
import { fail } from './errors.ts';

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

/** RFC 9562 version 5 (SHA-1, name based) UUID. */
export function uuidV5(name: string, namespace: string = SLUICE_NAMESPACE): string {
  const h = createHash('sha1').update(namespaceBytes(namespace)).update(name, 'utf8').digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const hex = h.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uuidV4(): string {
  return randomUUID();
}
