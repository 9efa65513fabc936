/**
 * `sluice state show|reset <spec>`: what each source of a pipeline has stored about where it
 * resumes, and forgetting it so the next run reads again from each source's start.
 *
 * The pipeline state file holds the positions of file, generate and Kinesis sources (unless a
 * Kinesis source keeps them in a DynamoDB lease table). Kafka sources commit to their consumer
 * group, and SNS has no position: SNS itself redelivers what was not answered. `show` reads the
 * remote places read-only when it can; `reset` only ever touches the state file and says how to
 * reset the others.
 */
import { readFile } from 'node:fs/promises';
import {
  type CheckpointFile,
  checkpointPath,
  FileCheckpointStore,
  type Positions,
} from '../runtime/checkpoint.ts';
import { validate } from '../spec/plugins.ts';
import type { StageSpec } from '../spec/validate.ts';
import { leaseNamespace, readShardCheckpoints, SHARD_END } from '../stages/aws/shard-checkpoints.ts';
import { colorEnabled, formatHuman } from './format.ts';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** How long `show` waits for a remote store (DynamoDB, a Kafka broker) before saying so. */
const REMOTE_TIMEOUT_MS = 10_000;

/** A problem with the command line or its files: exit 2. */
export class StateUsageError extends Error {}

interface Pipeline {
  name: string;
  sources: StageSpec[];
  stateFile: string;
  store: FileCheckpointStore;
}

async function loadPipeline(file: string, stateDir: string): Promise<Pipeline | number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new StateUsageError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const result = await validate(file, { text });
  if (!result.spec) {
    process.stderr.write(
      formatHuman(result.diagnostics, new Map([[file, text]]), colorEnabled(process.stderr)),
    );
    return EXIT_ERROR;
  }
  const name = result.spec.name;
  return {
    name,
    sources: result.spec.stages.filter((s) => s.kind === 'source'),
    stateFile: checkpointPath(stateDir, name),
    store: new FileCheckpointStore(stateDir, name),
  };
}

// ---------------------------------------------------------------- where each source keeps its state

type Store = 'state-file' | 'dynamodb' | 'kafka-group' | 'none';

interface PositionLine {
  partition: string;
  position: string;
  /** The position in words: "after line 1200", "at offset 12", "read to its end". */
  meaning: string;
}

interface SourceState {
  name: string;
  type: string;
  store: Store;
  /** The state file, `dynamodb:<table>`, `kafka:<group>`; absent when nothing is stored. */
  location?: string;
  positions: PositionLine[];
  /** What happens without a position, or why nothing could be read. */
  note?: string;
  /** Not a source of the spec any more (renamed or removed), but still in the state file. */
  orphan?: true;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function storeOf(s: StageSpec): Store {
  if (s.type === 'kafka') return 'kafka-group';
  if (s.type === 'sns') return 'none';
  if (s.type === 'kinesis' && dynamoTable(s) !== undefined) return 'dynamodb';
  return 'state-file';
}

function dynamoTable(s: StageSpec): string | undefined {
  const checkpoint = s.options.checkpoint as { dynamodb?: { table?: unknown } } | undefined;
  return str(checkpoint?.dynamodb?.table);
}

/** One stored position in words, by source type. */
function meaning(type: string, options: Record<string, unknown>, position: string): string {
  switch (type) {
    case 'file':
      return `after ${options.format === 'json' ? 'item' : 'line'} ${position}`;
    case 'generate':
      return `after record ${position}`;
    case 'kinesis': {
      if (position === SHARD_END) return 'read to its end (SHARD_END)';
      const i = position.indexOf(':');
      return i < 0
        ? `after sequence ${position}`
        : `after user record ${position.slice(i + 1)} of the KPL aggregate at sequence ${position.slice(0, i)}`;
    }
    case 'kafka':
      return `at offset ${position}`;
    default:
      return position;
  }
}

/** What a source does when it has no stored position. */
function startNote(s: StageSpec): string {
  switch (s.type) {
    case 'file':
      return 'no checkpoint: every file is read from its start';
    case 'generate':
      return 'no checkpoint: generates from record 0';
    case 'kinesis':
      return `no checkpoint: shards start at ${String(s.options.start ?? 'latest').toUpperCase()}`;
    case 'kafka':
      return `no committed offset: partitions start at the ${String(s.options.start ?? 'latest')} offset`;
    default:
      return 'no checkpoint';
  }
}

function lines(s: StageSpec, positions: Positions): PositionLine[] {
  return Object.entries(positions)
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([partition, position]) => ({ partition, position, meaning: meaning(s.type, s.options, position) }));
}

async function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${REMOTE_TIMEOUT_MS / 1000}s`)),
      REMOTE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function dynamoState(p: Pipeline, s: StageSpec): Promise<SourceState> {
  const table = dynamoTable(s) ?? '';
  const base: SourceState = {
    name: s.name,
    type: s.type,
    store: 'dynamodb',
    location: `dynamodb:${table}`,
    positions: [],
  };
  const namespace = leaseNamespace(p.name, s.name, str(s.options.stream) ?? '');
  try {
    const positions = await withTimeout(
      readShardCheckpoints({
        region: str(s.options.region),
        endpoint: str(s.options.endpoint),
        table,
        namespace,
      }),
      `DynamoDB table ${table}`,
    );
    if (positions === undefined)
      return { ...base, note: `table ${table} does not exist yet: ${startNote(s)}` };
    const found = lines(s, positions);
    return { ...base, positions: found, note: found.length === 0 ? startNote(s) : undefined };
  } catch (err) {
    return { ...base, note: `could not read DynamoDB table ${table}: ${(err as Error).message}` };
  }
}

async function kafkaState(s: StageSpec): Promise<SourceState> {
  const group = str(s.options.group) ?? '';
  const base: SourceState = {
    name: s.name,
    type: s.type,
    store: 'kafka-group',
    location: `kafka:${group}`,
    positions: [],
  };
  const brokers = s.options.brokers as string | string[];
  // The client loads only here: `show` of a spec without Kafka never pays for it.
  const { Admin } = await import('../stages/kafka/runtime.ts');
  const { baseClientOptions, kafkaErrorMessage, parseBrokers } = await import('../stages/kafka/client.ts');
  const { kafkaConnectionSecurity } = await import('../stages/kafka/security.ts');
  let admin: InstanceType<typeof Admin>;
  try {
    // The source's own TLS and SASL settings: a secured cluster answers nothing else.
    admin = new Admin({
      ...baseClientOptions(brokers, `sluice-state-${s.name}`, REMOTE_TIMEOUT_MS),
      ...(await kafkaConnectionSecurity(s.options, parseBrokers(brokers))),
    });
  } catch (err) {
    return { ...base, note: `could not connect to Kafka: ${(err as Error).message}` };
  }
  try {
    const groups = await withTimeout(
      admin.listConsumerGroupOffsets({ groups: [group] }),
      `Kafka at ${String(brokers)}`,
    );
    const positions: Positions = {};
    for (const g of groups) {
      for (const t of g.topics) {
        for (const part of t.partitions) {
          if (part.committedOffset >= 0n)
            positions[`${t.name}/${part.partitionIndex}`] = String(part.committedOffset);
        }
      }
    }
    const found = lines(s, positions);
    return { ...base, positions: found, note: found.length === 0 ? startNote(s) : undefined };
  } catch (err) {
    return { ...base, note: `could not read the offsets of group ${group}: ${kafkaErrorMessage(err)}` };
  } finally {
    await admin.close().catch(() => undefined);
  }
}

async function sourceStates(p: Pipeline, stored: CheckpointFile | undefined): Promise<SourceState[]> {
  const out: SourceState[] = [];
  for (const s of p.sources) {
    const store = storeOf(s);
    if (store === 'dynamodb') out.push(await dynamoState(p, s));
    else if (store === 'kafka-group') out.push(await kafkaState(s));
    else if (store === 'none')
      out.push({
        name: s.name,
        type: s.type,
        store,
        positions: [],
        note: 'no stored position: SNS redelivers every message not yet answered 200',
      });
    else {
      const positions = stored?.sources[s.name];
      const found = positions ? lines(s, positions) : [];
      out.push({
        name: s.name,
        type: s.type,
        store,
        location: found.length > 0 ? p.stateFile : undefined,
        positions: found,
        note: found.length === 0 ? startNote(s) : undefined,
      });
    }
  }
  // Positions of sources the spec no longer has: shown so a rename does not hide them.
  for (const [name, positions] of Object.entries(stored?.sources ?? {})) {
    if (p.sources.some((s) => s.name === name)) continue;
    out.push({
      name,
      type: '?',
      store: 'state-file',
      location: p.stateFile,
      orphan: true,
      positions: Object.entries(positions).map(([partition, position]) => ({
        partition,
        position,
        meaning: position,
      })),
      note: 'not a source of this spec (renamed or removed?)',
    });
  }
  return out;
}

// ---------------------------------------------------------------- show

export async function stateShow(
  file: string,
  opts: { stateDir: string; format: 'human' | 'json' },
): Promise<number> {
  const p = await loadPipeline(file, opts.stateDir);
  if (typeof p === 'number') return p;
  let stored: CheckpointFile | undefined;
  try {
    stored = await p.store.contents();
  } catch (err) {
    process.stderr.write(`sluice: ${(err as Error).message}\n`);
    return EXIT_ERROR;
  }
  const sources = await sourceStates(p, stored);
  if (opts.format === 'json') {
    const doc = { pipeline: p.name, state_file: p.stateFile, updated_at: stored?.updatedAt ?? null, sources };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return EXIT_OK;
  }
  const head = stored
    ? `pipeline ${p.name}: state file ${p.stateFile} (updated ${stored.updatedAt})`
    : `pipeline ${p.name}: no state file at ${p.stateFile} (nothing stored yet)`;
  const out = [head];
  for (const s of sources) {
    const where =
      s.store === 'dynamodb'
        ? `, checkpoints in DynamoDB table ${s.location?.slice('dynamodb:'.length)}`
        : s.store === 'kafka-group'
          ? `, offsets committed to Kafka consumer group ${s.location?.slice('kafka:'.length)}`
          : '';
    out.push(`source ${s.name} (${s.type}${where})${s.note ? `: ${s.note}` : ''}`);
    const width = Math.max(0, ...s.positions.map((l) => l.partition.length));
    for (const l of s.positions) out.push(`  ${l.partition.padEnd(width)}  ${l.meaning}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return EXIT_OK;
}

// ---------------------------------------------------------------- reset

export async function stateReset(
  file: string,
  opts: { stateDir: string; source?: string; yes?: boolean },
): Promise<number> {
  const p = await loadPipeline(file, opts.stateDir);
  if (typeof p === 'number') return p;
  let stored: CheckpointFile | undefined;
  try {
    stored = await p.store.contents();
  } catch (err) {
    process.stderr.write(`sluice: ${(err as Error).message}\n`);
    return EXIT_ERROR;
  }
  const inFile = Object.keys(stored?.sources ?? {});
  const known = [...new Set([...p.sources.map((s) => s.name), ...inFile])];
  if (opts.source !== undefined && !known.includes(opts.source)) {
    throw new StateUsageError(
      `pipeline ${p.name} has no source '${opts.source}'; its sources: ${known.join(', ') || '(none)'}`,
    );
  }
  const chosen = (name: string) => opts.source === undefined || opts.source === name;

  const out: string[] = [];
  // Sources that keep their state elsewhere: say so, and how to reset it there.
  for (const s of p.sources.filter((x) => chosen(x.name))) {
    const store = storeOf(s);
    if (store === 'kafka-group') {
      const group = str(s.options.group);
      out.push(
        `source ${s.name} (kafka) commits its offsets to consumer group ${group}: not changed here; ` +
          `with the pipeline stopped, run kafka-consumer-groups.sh --bootstrap-server <brokers> --group ${group} ` +
          '--reset-offsets --to-earliest --all-topics --execute',
      );
    } else if (store === 'dynamodb') {
      const ns = leaseNamespace(p.name, s.name, str(s.options.stream) ?? '');
      out.push(
        `source ${s.name} (kinesis) keeps its checkpoints in DynamoDB table ${dynamoTable(s)}: not changed here; ` +
          `with the pipeline stopped, delete the items whose lease_key starts with ${ns}/`,
      );
    } else if (store === 'none') {
      out.push(`source ${s.name} (sns) stores no position: nothing to reset`);
    }
  }

  const targets = inFile.filter(chosen);
  if (targets.length === 0) {
    out.push(
      `nothing to remove from ${p.stateFile}: no stored position for ${opts.source === undefined ? `pipeline ${p.name}` : `source ${opts.source}`}`,
    );
    process.stdout.write(`${out.join('\n')}\n`);
    return EXIT_OK;
  }
  const describe = (name: string, positions: Positions): string[] => {
    const spec = p.sources.find((s) => s.name === name);
    return Object.entries(positions).map(
      ([partition, position]) =>
        `  ${partition}  ${spec ? meaning(spec.type, spec.options, position) : position}`,
    );
  };
  if (!opts.yes) {
    out.push(`would remove from ${p.stateFile}:`);
    for (const name of targets) out.push(`source ${name}:`, ...describe(name, stored?.sources[name] ?? {}));
    process.stdout.write(`${out.join('\n')}\n`);
    process.stderr.write(
      'sluice: nothing removed: add --yes to remove these positions (stop the pipeline first; a running one writes them again)\n',
    );
    return EXIT_USAGE;
  }
  let removed: Record<string, Positions>;
  try {
    removed = await p.store.remove(opts.source);
  } catch (err) {
    process.stderr.write(`sluice: cannot update ${p.stateFile}: ${(err as Error).message}\n`);
    return EXIT_ERROR;
  }
  out.push(`removed from ${p.stateFile}:`);
  for (const [name, positions] of Object.entries(removed))
    out.push(`source ${name}:`, ...describe(name, positions));
  out.push('the next run reads these sources from their start');
  process.stdout.write(`${out.join('\n')}\n`);
  return EXIT_OK;
}
