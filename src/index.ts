/**
 * sluice as a library: validate a spec and run it inside a service, and write stage types of
 * one's own. `import { validate, Pipeline, defineTransform, Type } from 'sluice'`.
 *
 * Plugin files import from here too; when sluice loads them, `'sluice'` resolves to the copy
 * that loads them, so a plugin and the engine share one StageError class.
 */

// ------------------------------------------------------------ specs

export { formatGithub, formatHuman, formatJson } from './cli/format.ts';
export type { Diagnostic, Severity, Span } from './spec/diagnostics.ts';
export { DIAGNOSTIC_CODES, hasErrors } from './spec/diagnostics.ts';
export { loadPlugin, PluginError, stagesWith, type ValidateOptions, validate } from './spec/plugins.ts';
export { pipelineJsonSchema } from './spec/schema.ts';
export type {
  PipelineSpec,
  RuntimeSpec,
  StageSpec,
  ValidateTextOptions,
  ValidationResult,
} from './spec/validate.ts';
export { validateText } from './spec/validate.ts';

// ------------------------------------------------------------ running

export type { CheckpointScope, CheckpointStore } from './runtime/checkpoint.ts';
export { Pipeline, type RunOptions, type RunResult } from './runtime/engine.ts';
export type { PipelineSnapshot, StageMetrics, StageSnapshot } from './runtime/metrics.ts';
export { MetricsRegistry } from './runtime/metrics.ts';

// ------------------------------------------------------------ writing stages

/** Option schemas: TypeBox builds the JSON Schema and the option types from one object. */
export { type Static, type TObject, type TSchema, Type } from '@sinclair/typebox';
/** CEL expressions as the built-in stages use them: compile once (at create), evaluate per record. */
export { type CompiledExpr, compile as compileExpr, ExprError, ExprEvalError } from './expr/index.ts';
export type { Meta, RecordInit, SluiceRecord } from './runtime/record.ts';
/** Option kinds the validator parses or checks: `60s` → ms, `5MiB` → bytes, CEL, key templates, secrets. */
export { Duration, EnvSecret, Expr, Size, Template } from './spec/types.ts';
export type {
  Batching,
  CheckReport,
  RecordFailure,
  Sink,
  SinkBatch,
  SinkBatchingPolicy,
  SinkDefinition,
  Source,
  SourceContext,
  SourceDefinition,
  StageContext,
  StageDefinition,
  StageKind,
  Transform,
  TransformDefinition,
  TransformOutput,
  WriteResult,
} from './stages/define.ts';
export { defineSink, defineSource, defineTransform, StageError } from './stages/define.ts';
/** The stage types sluice ships with. */
export { definitions as builtinStages } from './stages/registry.ts';
