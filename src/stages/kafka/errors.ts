/**
 * Transient or permanent, for errors of the Kafka client. Like the rest of ../kafka/client.ts
 * this reads the errors' fields only, so it loads nothing of the client.
 *
 * Permanent: the broker refused a record's content (too large, invalid, timestamp out of range,
 * an invalid topic name from `topic_expr`). Everything else is transient: the broker or leader
 * not available, not leader for the partition, request timed out, network exceptions, not
 * enough replicas, throttling, and refusals about the destination (unknown topic, topic
 * authorization failed), which someone has to fix while the records wait.
 */

/** Kafka protocol error ids that refuse the records of a request for good. */
export const PERMANENT_KAFKA_ERRORS: ReadonlySet<string> = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_TIMESTAMP',
  'INVALID_TOPIC_EXCEPTION',
]);

interface ClientErrorShape {
  code?: unknown;
  apiId?: unknown;
  errors?: unknown;
  cause?: unknown;
}

/** Every error inside `err` (itself, the members of a MultipleErrors, causes), depth-bounded. */
function* nested(err: unknown, depth = 0): Generator<ClientErrorShape> {
  if (depth > 5 || err === null || typeof err !== 'object') return;
  const e = err as ClientErrorShape;
  yield e;
  if (Array.isArray(e.errors)) for (const inner of e.errors) yield* nested(inner, depth + 1);
  if (e.cause !== undefined) yield* nested(e.cause, depth + 1);
}

/** The protocol error ids (e.g. LEADER_NOT_AVAILABLE) found in a client error. */
export function kafkaErrorIds(err: unknown): string[] {
  const ids: string[] = [];
  for (const e of nested(err)) if (typeof e.apiId === 'string' && !ids.includes(e.apiId)) ids.push(e.apiId);
  return ids;
}

/** The id in `err` that refuses records for good, if any. */
export function permanentKafkaError(err: unknown): string | undefined {
  return kafkaErrorIds(err).find((id) => PERMANENT_KAFKA_ERRORS.has(id));
}

/** true unless the broker refused the records' content (see PERMANENT_KAFKA_ERRORS). */
export function isTransientKafkaError(err: unknown): boolean {
  const e = err as { retryable?: unknown } | null;
  if (e !== null && typeof e === 'object' && typeof e.retryable === 'boolean') return e.retryable;
  return permanentKafkaError(err) === undefined;
}

/** Legal Kafka topic names: what the broker would refuse with INVALID_TOPIC_EXCEPTION. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic === '' || topic === '.' || topic === '..') return `'${topic}' is not a valid topic name`;
  if (topic.length > 249) return `topic name of ${topic.length} characters exceeds Kafka's 249`;
  if (!/^[A-Za-z0-9._-]+$/.test(topic))
    return `topic name '${topic}' may hold only letters, digits, '.', '_' and '-'`;
  return undefined;
}
