/**
 * Start-up checks of the AWS sinks: one describe call for the target, bounded in time, whose
 * failure becomes a message that names the target and says what to create or fix. Without it
 * a missing bucket or stream would only show as a write retried forever.
 */
import { StageError } from '../define.ts';
import { awsErrorName, awsErrorText, httpStatus, networkErrorCode } from './errors.ts';

/** Long enough for a cold TLS handshake and a credential lookup; short enough to fail a typo fast. */
export const CHECK_TIMEOUT_MS = 15_000;

export interface CheckTarget {
  /** The sink type, first word of every message: `s3`, `kinesis`. */
  service: string;
  /** What is checked, as the user wrote it: `bucket 'x'`, `stream 'flow1'`. */
  what: string;
  region: string;
  /** The custom endpoint, when one is configured. */
  endpoint: string | undefined;
  /** The IAM action the check and the writes need, for access-denied messages. */
  actions: string;
}

/** Thrown by `open()`: the run fails at once with this message. */
export class StartupCheckError extends StageError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { retryable: false, cause: options?.cause });
    this.name = 'StartupCheckError';
  }
}

export function endpointLabel(t: { service: string; region: string; endpoint?: string | undefined }): string {
  return t.endpoint ?? `the AWS ${t.service} endpoint of region ${t.region}`;
}

const CREDENTIAL_REFUSALS = new Set([
  'InvalidAccessKeyId',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidSignatureException',
]);

const ACCESS_DENIALS = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'AuthorizationError',
  'AuthorizationErrorException',
  'Forbidden',
]);

/**
 * Runs `call` with an abort signal that fires after `timeoutMs`, and gives up at that deadline
 * even if the SDK is still between its own retries. Errors that say nothing about the target
 * itself (network, credentials, access) are turned into a message here; the rest are rethrown
 * as they are for the caller to explain (not found, wrong state).
 */
export async function checkTarget<T>(
  t: CheckTarget,
  call: (abortSignal: AbortSignal) => Promise<T>,
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new StartupCheckError(
          `${t.service}: no answer from ${endpointLabel(t)} within ${timeoutMs / 1000}s while checking ${t.what}; ` +
            'check `endpoint` (or AWS_ENDPOINT_URL), the region and the network',
        ),
      );
      // After the rejection: the call's own rejection on abort must not win the race.
      abort.abort();
    }, timeoutMs);
  });
  try {
    return await Promise.race([call(abort.signal), deadline]);
  } catch (err) {
    throw explainCommon(t, err) ?? err;
  } finally {
    clearTimeout(timer);
  }
}

/** A message for failures that are not about the target's existence, or undefined. */
function explainCommon(t: CheckTarget, err: unknown): StartupCheckError | undefined {
  if (err instanceof StartupCheckError) return err;
  const name = awsErrorName(err);
  const text = awsErrorText(err);
  const network = networkErrorCode(err);
  if (network !== undefined || name === 'TimeoutError' || name === 'AbortError') {
    return new StartupCheckError(
      `${t.service}: cannot reach ${endpointLabel(t)} to check ${t.what} (${text}); ` +
        'check `endpoint` (or AWS_ENDPOINT_URL), the region and that the service is up',
      { cause: err },
    );
  }
  if (name === 'CredentialsProviderError') {
    return new StartupCheckError(
      `${t.service}: no AWS credentials to check ${t.what} (${text}); provide them through the default chain: ` +
        'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws/credentials, SSO, or an instance or task role',
      { cause: err },
    );
  }
  if (CREDENTIAL_REFUSALS.has(name)) {
    return new StartupCheckError(
      `${t.service}: the credentials from the default chain were refused while checking ${t.what} (${text}); fix or renew them`,
      { cause: err },
    );
  }
  if (ACCESS_DENIALS.has(name) || httpStatus(err) === 403) {
    return new StartupCheckError(
      `${t.service}: access denied to ${t.what} with the credentials from the default chain (${text}); ` +
        `grant ${t.actions} on it, or use other credentials`,
      { cause: err },
    );
  }
  return undefined;
}

/** The last resort message for an error neither checkTarget nor the sink explains. */
export function cannotCheck(t: CheckTarget, err: unknown): StartupCheckError {
  return new StartupCheckError(
    `${t.service}: cannot check ${t.what} at ${endpointLabel(t)}: ${awsErrorText(err)}`,
    {
      cause: err,
    },
  );
}

/** How one sink's `open()` checks its target: the describe call and what its answers mean. */
export interface StatusCheck<T> {
  /** The describe call; it fails when the target is missing. */
  describe: (abortSignal: AbortSignal) => Promise<T>;
  /** Whether a describe failure means the target does not exist. */
  notFound: (err: unknown) => boolean;
  /** The command that creates the target, for the "does not exist" message. */
  create: string;
  /** The option that names the target, for the "fix …" hints. */
  option: string;
  /** A message for other failures this sink can explain (a bucket in another region), or undefined. */
  explain?: (err: unknown) => StartupCheckError | undefined;
  /** The target's state in the answer: the check waits while it is CREATING and wants one of `accepted`. */
  state?: { of: (res: T) => string | undefined; accepted: readonly string[] };
}

/**
 * The start-up check of a sink's target: describes it within the deadline (waiting while it is
 * being created), and fails with a message that says what to create or fix.
 */
export async function checkStatus<T>(t: CheckTarget, c: StatusCheck<T>): Promise<void> {
  const state = c.state;
  let current: string | undefined;
  try {
    if (state) {
      current = await waitWhileCreating(async () => state.of(await checkTarget(t, c.describe)), ['CREATING']);
    } else await checkTarget(t, c.describe);
  } catch (err) {
    if (err instanceof StartupCheckError) throw err;
    if (c.notFound(err)) {
      throw new StartupCheckError(
        `${t.service}: ${t.what} does not exist in region ${t.region}; create it (${c.create}) or fix \`${c.option}\``,
        { cause: err },
      );
    }
    throw c.explain?.(err) ?? cannotCheck(t, err);
  }
  if (state && (current === undefined || !state.accepted.includes(current))) {
    throw new StartupCheckError(
      `${t.service}: ${t.what} in region ${t.region} is ${current ?? 'in an unknown state'}, not ACTIVE; ` +
        (current === 'CREATING'
          ? 'wait until it is created, then start again'
          : `create it again or fix \`${c.option}\``),
    );
  }
}

/** Polls `state` while it says the target is still being created, up to `timeoutMs`. */
export async function waitWhileCreating(
  state: () => Promise<string | undefined>,
  creating: readonly string[],
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<string | undefined> {
  const until = Date.now() + timeoutMs;
  let s = await state();
  while (s !== undefined && creating.includes(s) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    s = await state();
  }
  return s;
}

/**
 * Settles like `work`, or rejects with a StartupCheckError saying `message()` once `timeoutMs`
 * passed: bounds a start-up call that takes no abort signal, and leaves its errors as they are.
 */
export async function withinCheckDeadline<T>(
  work: Promise<T>,
  message: () => string,
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StartupCheckError(message())), timeoutMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
