/**
 * Schema builders for option kinds that need more than JSON types: durations, sizes,
 * expressions, key templates and secrets from the environment. Each marks its schema with
 * `x-sluice` so the validator knows to parse, compile or check it, with exact positions.
 */
import { type StringOptions, type TSchema, type TUnsafe, Type } from '@sinclair/typebox';
import { DURATION_PATTERN, SIZE_PATTERN } from './units.ts';

export type SluiceKind = 'duration' | 'size' | 'expr' | 'template' | 'env-secret' | 'secret';
export const SLUICE_KIND = 'x-sluice';

interface Doc {
  description: string;
  default?: unknown;
  examples?: unknown[];
}

/** A string like `60s`; the stage receives milliseconds. */
export const Duration = (doc: Doc): TUnsafe<number> =>
  Type.Unsafe<number>({ type: 'string', pattern: DURATION_PATTERN, [SLUICE_KIND]: 'duration', ...doc });

/** A string like `5MiB`; the stage receives bytes. */
export const Size = (doc: Doc): TUnsafe<number> =>
  Type.Unsafe<number>({ type: 'string', pattern: SIZE_PATTERN, [SLUICE_KIND]: 'size', ...doc });

/** A CEL expression over the record (see docs/expressions.md); compiled at validation. */
export const Expr = (doc: Doc & StringOptions) =>
  Type.String({ minLength: 1, [SLUICE_KIND]: 'expr', ...doc });

/** A key/path template with `{field}` placeholders (see runtime/template.ts). */
export const Template = (doc: Doc & StringOptions) =>
  Type.String({ minLength: 1, [SLUICE_KIND]: 'template', ...doc });

/** A value that must come from the environment (`${MYSQL_URL}`), never written in the spec. */
export const EnvSecret = (doc: Doc & StringOptions) =>
  Type.String({ minLength: 1, [SLUICE_KIND]: 'env-secret', ...doc });

/**
 * A value that is a secret as a whole (a password, a private key): the spec may hold only a
 * reference to it, `${KAFKA_PASSWORD}` (or `${KAFKA_PASSWORD:-}`, so a spec validates where the
 * variable is unset; the empty value then fails at start); any other text there is a
 * `literal-credential` error.
 */
export const Secret = (doc: Doc & StringOptions) => Type.String({ [SLUICE_KIND]: 'secret', ...doc });

export const sluiceKind = (schema: TSchema): SluiceKind | undefined =>
  (schema as Record<string, unknown>)[SLUICE_KIND] as SluiceKind | undefined;

/** AWS options shared by every AWS stage: region, endpoint; credentials come from the SDK chain only. */
export const AwsOptions = {
  region: Type.Optional(
    Type.String({
      description: 'AWS region; defaults to AWS_REGION / the SDK chain',
      examples: ['us-east-1'],
    }),
  ),
  endpoint: Type.Optional(
    Type.String({
      description: 'Custom endpoint (moto, LocalStack); defaults to AWS_ENDPOINT_URL when set',
      examples: ['http://127.0.0.1:5000'],
    }),
  ),
};
