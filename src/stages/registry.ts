/** Every stage type sluice knows. Adding a stage: one file, one line here. */
import type { StageDefinition } from './define.ts';
import { fileSink } from './sinks/file.ts';
import { firehoseSink } from './sinks/firehose.ts';
import { httpSink } from './sinks/http.ts';
import { kafkaSink } from './sinks/kafka.ts';
import { kinesisSink } from './sinks/kinesis.ts';
import { mysqlSink } from './sinks/mysql/index.ts';
import { postgresSink } from './sinks/postgres/index.ts';
import { s3Sink } from './sinks/s3.ts';
import { snsSink } from './sinks/sns.ts';
import { stdoutSink } from './sinks/stdout.ts';
import { fileSource } from './sources/file.ts';
import { generateSource } from './sources/generate.ts';
import { httpServerSource } from './sources/http-server.ts';
import { kafkaSource } from './sources/kafka.ts';
import { kinesisSource } from './sources/kinesis.ts';
import { snsSource } from './sources/sns.ts';
import { dedupTransform } from './transforms/dedup.ts';
import { enrichTransform } from './transforms/enrich.ts';
import { filterTransform } from './transforms/filter.ts';
import { partitionTransform } from './transforms/partition.ts';

export const definitions: readonly StageDefinition[] = [
  generateSource,
  fileSource,
  kinesisSource,
  snsSource,
  httpServerSource,
  kafkaSource,
  enrichTransform,
  filterTransform,
  dedupTransform,
  partitionTransform,
  stdoutSink,
  fileSink,
  s3Sink,
  mysqlSink,
  postgresSink,
  kinesisSink,
  firehoseSink,
  snsSink,
  kafkaSink,
  httpSink,
] as unknown as readonly StageDefinition[];
