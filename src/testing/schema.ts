/**
 * The shape of a test file (`<pipeline>.test.yaml`): cases that feed records into the sources
 * of one spec and state what its sinks and error outputs must receive. One TypeBox object gives
 * the validator and the published schemas/test.schema.json.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';

export const TEST_SCHEMA_ID = 'https://sluice.dev/schemas/test.schema.json';

const Json = Type.Unknown();
const Values = Type.Array(Json, {
  description: 'Record values (order does not matter unless `ordered: true`)',
});

const Raw = Type.Object(
  {
    data: Type.Optional(
      Type.Union([Type.String(), Type.Record(Type.String(), Json), Type.Array(Json)], {
        description:
          'The payload: text as it is, or a mapping/list written out as JSON (Kafka value, Kinesis data, SNS notification body)',
      }),
    ),
    base64: Type.Optional(
      Type.String({ description: 'The payload as base64 bytes instead of `data` (binary, KPL aggregates)' }),
    ),
    key: Type.Optional(Type.String({ description: 'Kafka message key; Kinesis partition key' })),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Kafka headers' })),
    meta: Type.Optional(
      Type.Record(Type.String(), Json, {
        description: 'Metadata the source would set, added to or overriding what it derives',
      }),
    ),
  },
  { additionalProperties: false },
);

const Input = Type.Object(
  {
    records: Type.Optional(Values),
    fixture: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'A file of records, relative to the test file: .ndjson/.jsonl, .json (a list) or .csv',
      }),
    ),
    raw: Type.Optional(
      Type.Array(Raw, {
        description: "Payloads decoded by the source's own codec, as its service delivers them",
      }),
    ),
    key: Type.Optional(Type.String({ description: 'Record key of the inline and fixture records' })),
    meta: Type.Optional(
      Type.Record(Type.String(), Json, { description: 'Metadata of the inline and fixture records' }),
    ),
  },
  { additionalProperties: false, description: 'What one source emits in this case' },
);

const ObjectExpect = Type.Object(
  {
    key: Type.String({ description: 'Object key or file path, as rendered from the template' }),
    records: Type.Optional(Values),
    count: Type.Optional(Type.Integer({ minimum: 0 })),
    content_encoding: Type.Optional(Type.String({ examples: ['gzip'] })),
  },
  { additionalProperties: false },
);

const MessageExpect = Type.Object(
  {
    value: Type.Optional(Json),
    key: Type.Optional(Type.String()),
    partition: Type.Optional(Type.Integer({ minimum: 0 })),
    partition_key: Type.Optional(Type.String()),
    topic: Type.Optional(Type.String()),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
    attributes: Type.Optional(Type.Record(Type.String(), Json)),
    subject: Type.Optional(Type.String()),
  },
  {
    additionalProperties: false,
    description: 'Fields a message must have; those not named are not compared',
  },
);

const Expectation = Type.Object(
  {
    count: Type.Optional(Type.Integer({ minimum: 0, description: 'How many records' })),
    records: Type.Optional(Values),
    where: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description: 'CEL conditions every record must meet (its fields are variables)',
        examples: [['consumo_meta > 0']],
      }),
    ),
    ordered: Type.Optional(
      Type.Boolean({ default: false, description: 'Records, rows and messages in this order' }),
    ),
    objects: Type.Optional(
      Type.Array(ObjectExpect, { description: 'Object and file sinks: every object written' }),
    ),
    rows: Type.Optional(
      Type.Array(Type.Record(Type.String(), Json), {
        description: 'mysql: every row as bound to the statement (after column mapping and conversion)',
      }),
    ),
    messages: Type.Optional(
      Type.Array(MessageExpect, { description: 'Kafka, Kinesis, Firehose, SNS: every message sent' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'What one sink writes, or one output (`stage`, `stage.errors`) carries; empty: nothing',
  },
);

const Clock = Type.String({
  format: 'date-time',
  description: 'What now() returns and when every buffer opens ({batch_start}); time does not pass',
  examples: ['2024-03-20T12:00:00Z'],
});
const Seed = Type.Integer({ description: 'Seed of uuid_v4() and {uuid}' });

const Case = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    clock: Type.Optional(Clock),
    seed: Type.Optional(Seed),
    inputs: Type.Record(Type.String(), Input, { description: 'Per source name' }),
    expect: Type.Optional(
      Type.Record(Type.String(), Expectation, {
        description:
          'Per sink name, or per output (`stage`, `stage.errors`); an output not named is not checked. Absent or empty: `sluice test --update` fills it with what the case produces',
      }),
    ),
  },
  { additionalProperties: false },
);

export const TestFileSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    pipeline: Type.String({ minLength: 1, description: 'The spec under test, relative to this file' }),
    env: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description:
          "The only environment the spec sees: unset variables take their defaults, the machine's are ignored",
      }),
    ),
    clock: Type.Optional(Clock),
    seed: Type.Optional(Seed),
    tables: Type.Optional(
      Type.Record(Type.String(), Type.Record(Type.String(), Type.String()), {
        description: 'Columns (name → SQL type) of tables a mysql sink writes without `columns`',
      }),
    ),
    partitions: Type.Optional(
      Type.Record(Type.String(), Type.Integer({ minimum: 1 }), {
        description: 'Partitions of the topic of each kafka sink (default its create_topic, else 1)',
      }),
    ),
    cases: Type.Array(Case, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type TestFile = Static<typeof TestFileSchema>;
export type TestCase = TestFile['cases'][number];
export type TestInput = Static<typeof Input>;
export type TestExpectation = Static<typeof Expectation>;

/** The JSON Schema (2020-12) of test files, as published in schemas/test.schema.json. */
export function testJsonSchema(): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(TestFileSchema as TSchema)) as Record<string, unknown>;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: TEST_SCHEMA_ID,
    title: 'sluice pipeline test',
    description:
      'Cases that feed records into the sources of one pipeline spec and state what its sinks and error outputs receive (`sluice test`)',
    ...plain,
  };
}
