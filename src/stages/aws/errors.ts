/**
 * One classification of AWS SDK errors for every AWS sink: transient (wait and retry, hold the
 * records) or permanent for the records concerned (error output at once).
 *
 * Transient is the default. Only errors that name something wrong with the request's content
 * are permanent, because a retry sends the same bytes to the same refusal. Errors about the
 * destination (bucket, stream or topic missing, access denied, credentials expired, KMS key
 * disabled) are transient on purpose: the records are fine, someone has to fix the destination,
 * and dead-lettering a whole stream of good records while they do would be the worse outcome.
 * Start-up checks (see startup.ts) catch those at once when the run begins.
 */

/** Error names (the AWS error code) that refuse the content of the request for good. */
export const PERMANENT_AWS_ERRORS: ReadonlySet<string> = new Set([
  'ValidationException',
  'ValidationError',
  'InvalidArgumentException',
  'InvalidArgument',
  'InvalidParameter',
  'InvalidParameterException',
  'InvalidParameterValueException',
  'InvalidParameterValue',
  'ParameterValueInvalid',
  'MessageTooLarge',
  'RequestEntityTooLarge',
  'EntityTooLarge',
  'KeyTooLongError',
  'MetadataTooLarge',
  'InvalidStorageClass',
  'SerializationException',
  'InvalidBatchEntryId',
  'BatchEntryIdsNotDistinct',
  'BatchEntryIdsNotDistinctException',
  'BatchRequestTooLong',
  'EmptyBatchRequest',
  'EmptyBatchRequestException',
  'TooManyEntriesInBatchRequest',
  'TooManyEntriesInBatchRequestException',
]);

/**
 * Names that are transient whatever their HTTP status: throttling, service faults, timeouts and
 * the destination-level refusals described above. Listed so the sinks' documentation and tests
 * can name them; anything not permanent is transient anyway.
 */
export const TRANSIENT_AWS_ERRORS: ReadonlySet<string> = new Set([
  // throttling
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'LimitExceededException',
  'KMSThrottlingException',
  'Throttled',
  'BandwidthLimitExceeded',
  // service faults and timeouts
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalError',
  'InternalErrorException',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'PriorRequestNotComplete',
  // the destination, not the record
  'NoSuchBucket',
  'NotFound',
  'NotFoundException',
  'ResourceNotFoundException',
  'ResourceInUseException',
  'AccessDenied',
  'AccessDeniedException',
  'AuthorizationError',
  'AuthorizationErrorException',
  'Forbidden',
  'InvalidAccessKeyId',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'CredentialsProviderError',
  'KMSDisabledException',
  'KMSInvalidStateException',
  'KMSNotFoundException',
  'KMSAccessDeniedException',
  'KMSOptInRequired',
  'InvalidKMSResourceException',
]);

/** Node's codes for a connection that could not be made or was lost. */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_HTTP2_STREAM_ERROR',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  retryable?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  cause?: unknown;
}

const shape = (err: unknown): SdkErrorShape =>
  err !== null && typeof err === 'object' ? (err as SdkErrorShape) : {};

/** The AWS error code of an SDK error (`NoSuchBucket`, `ThrottlingException`), else the JS name. */
export function awsErrorName(err: unknown): string {
  const e = shape(err);
  if (typeof e.Code === 'string' && e.Code !== '') return e.Code;
  return typeof e.name === 'string' ? e.name : 'Error';
}

export function httpStatus(err: unknown): number | undefined {
  const s = shape(err).$metadata?.httpStatusCode;
  return typeof s === 'number' ? s : undefined;
}

/** The Node network error code of `err` or of one of its causes, e.g. ECONNREFUSED. */
export function networkErrorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    const code = shape(e).code;
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return code;
    const inner = e instanceof AggregateError ? e.errors[0] : shape(e).cause;
    e = inner;
  }
  return undefined;
}

/**
 * true when `err` is worth waiting out: a network error, a timeout, throttling, a 5xx or 429,
 * an error the SDK marks retryable, or a refusal about the destination rather than the content.
 * false only for errors that refuse the request's content (see PERMANENT_AWS_ERRORS) or a 413.
 */
export function isTransientAwsError(err: unknown): boolean {
  const e = shape(err);
  // A stage's own verdict (StageError) wins.
  if (e.retryable === false) return false;
  if (e.retryable === true) return true;
  if (networkErrorCode(err) !== undefined) return true;
  if (e.$retryable !== undefined && e.$retryable !== null) return true;
  const status = httpStatus(err);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  const name = awsErrorName(err);
  if (inSet(TRANSIENT_AWS_ERRORS, name)) return true;
  if (inSet(PERMANENT_AWS_ERRORS, name)) return false;
  if (status === 413) return false;
  return true;
}

/**
 * Whether an error code is one of the listed ones, with or without the `Exception` suffix:
 * batch APIs report entry codes without it (SNS's `KMSThrottling`, `InvalidParameter`).
 */
function inSet(set: ReadonlySet<string>, name: string): boolean {
  return set.has(name) || set.has(`${name}Exception`) || set.has(name.replace(/Exception$/, ''));
}

/**
 * The verdict for a per-entry error code of a batch call (PutRecords, PublishBatch), or
 * undefined when the code is in neither list and the caller's own hint (SenderFault) decides.
 */
export function entryCodeTransient(code: string): boolean | undefined {
  if (inSet(TRANSIENT_AWS_ERRORS, code)) return true;
  if (inSet(PERMANENT_AWS_ERRORS, code)) return false;
  return undefined;
}

/** `Name: message`, for failure reasons. */
export function awsErrorText(err: unknown): string {
  const name = awsErrorName(err);
  const message = err instanceof Error ? err.message : String(err);
  const code = networkErrorCode(err);
  // A plain Error (network failures) says enough in its message.
  const text = !message || message === name ? name : name === 'Error' ? message : `${name}: ${message}`;
  return code && !text.includes(code) ? `${text} (${code})` : text;
}
