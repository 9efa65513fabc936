/**
 * The pipeline schema, generated from the stage registry: one JSON Schema (2020-12) for
 * editors and `sluice schema`, and one schema per stage type that the validator applies after
 * choosing by `type`, so errors speak about the chosen type only.
 */
import { type TObject, type TSchema, Type } from '@sinclair/typebox';
import type { StageDefinition, StageKind } from '../stages/define.ts';
import { Duration, Size } from './types.ts';

export const SCHEMA_ID = 'https://sluice.dev/schemas/pipeline.schema.json';
const NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_-]*$';

const From = Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_-]*(\\.errors)?$' }), {
  minItems: 1,
  description: 'Outputs this stage reads: stage names, or `<stage>.errors` for a stage’s error output',
  examples: [['enriched'], ['enriched.errors']],
});

const OnError = Type.Union([Type.Literal('continue'), Type.Literal('stop')], {
  default: 'continue',
  description:
    '`continue`: a record this stage cannot handle goes to `<stage>.errors` (or is counted and logged when nothing reads it); `stop`: the pipeline stops on the first one',
});

export const RetrySchema = Type.Object(
  {
    max_attempts: Type.Optional(
      Type.Integer({
        minimum: 1,
        description:
          'Attempts per record, the first included, before a transient failure is treated as permanent (the record goes to the error output or the dead letters). Default: no limit — an outage is waited out',
      }),
    ),
    max_elapsed: Type.Optional(
      Duration({
        description:
          'Longest a record is retried from its first failure before it is treated as permanent. Default: no limit',
        examples: ['15m'],
      }),
    ),
    backoff: Duration({
      default: '200ms',
      description: 'First wait between attempts; doubles each time, with jitter',
    }),
    max_backoff: Duration({ default: '30s', description: 'Longest wait between attempts' }),
  },
  {
    additionalProperties: false,
    description:
      'Retry of transient write failures (unreachable, timing out, throttling, restarting). By default they are retried until they succeed while the sink holds its records and stops reading, so the source stops too; permanent failures (a record rejected or not encodable) are never retried',
  },
);

export const BufferSchema = Type.Object(
  {
    max_records: Type.Integer({ minimum: 1, description: 'Flush when the buffer holds this many records' }),
    max_bytes: Size({ description: 'Flush when the buffer holds this many bytes', examples: ['5MiB'] }),
    max_age: Duration({ description: 'Flush a buffer this long after its first record', examples: ['60s'] }),
    max_total_records: Type.Integer({
      minimum: 1,
      description:
        'Records the sink holds at once — in its buffers, waiting for a write, being written or retried (default 50000, at least max_records). At the bound it stops reading its input (the largest buffer is flushed early), so neither many partitions nor a long outage can exhaust memory',
    }),
    max_total_bytes: Size({
      description:
        'Bytes the sink holds at once, counted like max_total_records (default 64MiB, at least max_bytes × (max_in_flight + 1))',
      examples: ['256MiB'],
    }),
  },
  {
    additionalProperties: false,
    description: 'How records are gathered into one write; the sink type sets defaults',
  },
);

/** Keys the runtime owns, per kind; stage options may not reuse them. */
export function commonKeys(kind: StageKind): Record<string, TSchema> {
  const type = Type.String({ description: 'Stage type' });
  if (kind === 'source') return { type, on_error: Type.Optional(OnError) };
  if (kind === 'transform') return { type, from: From, on_error: Type.Optional(OnError) };
  return {
    type,
    from: From,
    on_error: Type.Optional(OnError),
    retry: Type.Optional(RetrySchema),
    buffer: Type.Optional(Type.Partial(BufferSchema, { additionalProperties: false })),
    max_in_flight: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 256, default: 4, description: 'Writes under way at once' }),
    ),
  };
}

/** The full schema of one stage type: common keys plus its own options, nothing else. */
export function stageSchema(def: StageDefinition): TObject {
  const common = commonKeys(def.kind);
  return Type.Object(
    { ...common, ...def.options.properties, type: Type.Literal(def.type, { description: def.description }) },
    { additionalProperties: false, title: `${def.kind} ${def.type}`, description: def.description },
  );
}

export const RuntimeSettings = Type.Object(
  {
    channel_capacity: Type.Integer({
      minimum: 1,
      maximum: 65536,
      default: 4,
      description: 'Batches a channel between two stages holds before its writer waits',
    }),
    batch_size: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 500,
      description: 'Records per batch from local sources',
    }),
    shutdown_timeout: Duration({
      default: '30s',
      description: 'How long a stop may take to drain and flush',
    }),
    checkpoint_interval: Duration({ default: '1s', description: 'How often acked positions are written' }),
    http: Type.Optional(
      Type.String({
        pattern: '^(?:(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)?:)?[0-9]{1,5}$',
        description:
          'Serve /metrics (Prometheus), /ready, /live and /stats at `[host:]port`. Off when absent; a bare port listens on 127.0.0.1 only — name another host (0.0.0.0) to let other machines read it. `sluice run --http` overrides it',
        examples: ['127.0.0.1:4195', '4195', '0.0.0.0:4195'],
      }),
    ),
  },
  { additionalProperties: false, description: 'Engine settings' },
);

export const SECTION_KIND = { sources: 'source', transforms: 'transform', sinks: 'sink' } as const;
export type Section = keyof typeof SECTION_KIND;

let topLevel: TObject | undefined;

/** One object for the life of the process, so its compiled validator is built once, not per spec. */
export function topLevelSchema(): TObject {
  topLevel ??= buildTopLevelSchema();
  return topLevel;
}

function buildTopLevelSchema(): TObject {
  return Type.Object(
    {
      version: Type.Literal(1, { description: 'Spec format version' }),
      name: Type.String({ pattern: NAME_PATTERN, description: 'Pipeline name; names its checkpoint file' }),
      description: Type.Optional(Type.String()),
      plugins: Type.Optional(
        Type.Array(Type.String({ minLength: 1 }), {
          description:
            'Files that define more stage types (TypeScript or JavaScript modules exporting defineSource/defineTransform/defineSink results), relative to this spec',
          examples: [['./stages/uppercase.ts']],
        }),
      ),
      runtime: Type.Optional(Type.Partial(RuntimeSettings, { additionalProperties: false })),
      sources: Type.Record(Type.String({ pattern: NAME_PATTERN }), Type.Object({}), { minProperties: 1 }),
      transforms: Type.Optional(Type.Record(Type.String({ pattern: NAME_PATTERN }), Type.Object({}))),
      sinks: Type.Record(Type.String({ pattern: NAME_PATTERN }), Type.Object({}), { minProperties: 1 }),
    },
    { additionalProperties: false },
  );
}

/** The editor-facing document: the top level plus, per section, a choice of stage by `type`. */
export function pipelineJsonSchema(defs: readonly StageDefinition[]): Record<string, unknown> {
  const top = structuredClone(topLevelSchema()) as Record<string, unknown> & {
    properties: Record<string, Record<string, unknown>>;
  };
  const $defs: Record<string, unknown> = {};
  for (const def of defs) $defs[`${def.kind}.${def.type}`] = stripSymbols(stageSchema(def));
  for (const [section, kind] of Object.entries(SECTION_KIND)) {
    const ofKind = defs.filter((d) => d.kind === kind);
    $defs[kind] = {
      type: 'object',
      required: ['type'],
      properties: { type: { enum: ofKind.map((d) => d.type), description: `${kind} type` } },
      allOf: ofKind.map((d) => ({
        if: { properties: { type: { const: d.type } }, required: ['type'] },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then, not a thenable
        then: { $ref: `#/$defs/${kind}.${d.type}` },
      })),
    };
    const prop = top.properties[section];
    prop.additionalProperties = { $ref: `#/$defs/${kind}` };
    delete prop.patternProperties;
    prop.propertyNames = { pattern: NAME_PATTERN };
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'sluice pipeline',
    ...stripSymbols(top),
    $defs,
  };
}

/** TypeBox keeps its own symbol keys on schemas; JSON output must not depend on them. */
function stripSymbols<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema)) as T;
}
