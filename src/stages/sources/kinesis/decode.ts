/** Decoding of one Kinesis record's data with the source's codec: the same for live reads and `sluice test`. */
import { decodeJson, excerpt, type InputLimits, tooLargeReason } from '../../../runtime/limits.ts';
import type { RecordInit } from '../../../runtime/record.ts';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes one record's data with the source's codec into a record or a failure (the same for live reads and `sluice test`). */
export function decodeData(
  codec: 'json' | 'text' | 'binary',
  limits: InputLimits,
  data: Uint8Array,
  meta: Record<string, unknown>,
  key: string | undefined,
  time: number | undefined,
  position: string,
  good: RecordInit[],
  bad: { input: RecordInit; reason: string }[],
): void {
  const where = `record ${meta.sequence_number} in shard ${meta.shard_id}`;
  const max = limits.maxRecordBytes;
  if (data.length > max) {
    // Only the start goes to the error output, as text (lossy) or base64 for binary data.
    // Enough bytes for the excerpt's characters whatever their width; binary keeps 1 KiB.
    const head = Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, 4096));
    const value =
      codec === 'binary' ? head.subarray(0, 1024).toString('base64') : excerpt(head.toString('utf8'));
    const encoding = codec === 'binary' ? { data_encoding: 'base64' } : {};
    bad.push({
      input: { value, key, time, position, meta: { ...meta, ...encoding }, size: data.length },
      reason: `${where}: ${tooLargeReason(data.length, max)}`,
    });
    return;
  }
  if (codec === 'binary') {
    good.push({ value: data, key, time, position, meta, size: data.length });
    return;
  }
  let text: string;
  try {
    text = UTF8.decode(data);
  } catch {
    const value = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
    bad.push({
      input: { value, key, time, position, meta: { ...meta, data_encoding: 'base64' }, size: data.length },
      reason: `record ${meta.sequence_number} in shard ${meta.shard_id} is not valid UTF-8`,
    });
    return;
  }
  if (codec === 'text') {
    good.push({ value: text, key, time, position, meta, size: data.length });
    return;
  }
  const decoded = decodeJson(text, limits, data.length);
  if (decoded.ok) {
    good.push({ value: decoded.value, key, time, position, meta, size: data.length });
    return;
  }
  bad.push({
    input: { value: text, key, time, position, meta, size: data.length },
    reason:
      decoded.kind === 'malformed'
        ? `${where} is not JSON: ${decoded.detail}`
        : `${where}: ${decoded.reason}`,
  });
}
