/**
 * What the HTTP sources (`http_server`, `sns`) share: one POST path, a bound on body size and
 * on open requests, records handed to the pipeline and the request answered only once they are
 * durable (acks), 503 with Retry-After under backpressure or while stopping. Each source keeps
 * its own parsing, authentication and answer format.
 *
 * Metrics: `requests` every request; `busy` refused for too many open requests or a full
 * pipeline; `ack_timeouts` acks slower than the request timeout.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SourceContext, StageContext } from '../define.ts';

/** A request refused with `status`; the message is what the client is told. */
export class HttpError extends Error {
  readonly status: number;
  /** A metric the source counts besides its usual one, naming why. */
  readonly metric: string | undefined;
  constructor(status: number, message: string, metric?: string) {
    super(message);
    this.status = status;
    this.metric = metric;
  }
}

/** Answers once, with `body` in the source's format. */
export type Answer<Body> = (status: number, body: Body, retryAfter?: number) => void;

export interface IntakeOptions<Body> {
  /** Names the source in log lines: `<name> request failed`. */
  name: string;
  /** The log line once the server listens. */
  listeningMessage: string;
  listen: { address?: string; port: number };
  path: string;
  maxBody: number;
  maxConcurrent: number;
  requestTimeout: number;
  acceptTimeout: number;
  /** Whether a request refused while stopping also counts as `busy`. */
  stoppingIsBusy: boolean;
  /** Writes an answer in the source's format. */
  reply: (res: ServerResponse, status: number, body: Body, retryAfter?: number) => void;
  /** The body of an error answer. */
  error: (message: string) => Body;
  /** Serves a POST to the path; the concurrency slot is held until it is answered. */
  serve: (req: IncomingMessage, res: ServerResponse, sc: SourceContext, path: string) => Promise<void>;
  /** Counts and logs a refused request, and sets any header its status needs. */
  refused: (req: IncomingMessage, res: ServerResponse, err: HttpError) => void;
  /** Tunes the server before it listens. */
  configure?: (server: Server) => void;
}

export class HttpIntake<Body> {
  private readonly o: IntakeOptions<Body>;
  private readonly ctx: StageContext;
  private server: Server | undefined;
  /** Open requests (answered or not) whose records may still be waiting to enter a full pipeline. */
  private busy = 0;
  private stopping = false;
  private readonly pendingEmits = new Set<Promise<unknown>>();
  /** Responses not yet sent. */
  private readonly open = new Set<Promise<void>>();
  private resolveListening!: (a: AddressInfo) => void;
  /** Resolves with the bound address once the server listens (port 0 picks a free port). */
  readonly listening: Promise<AddressInfo>;

  constructor(o: IntakeOptions<Body>, ctx: StageContext) {
    this.o = o;
    this.ctx = ctx;
    this.listening = new Promise((r) => {
      this.resolveListening = r;
    });
  }

  /** Starts the server. */
  async listen(sc: SourceContext): Promise<void> {
    // node:http is fetched when a server starts: an ESM import of it builds its whole namespace,
    // which loads http2 and undici too (~40 ms of every start, validate included).
    const { createServer } = process.getBuiltinModule('node:http');
    const server = createServer({
      requestTimeout: this.o.requestTimeout,
      headersTimeout: Math.min(this.o.requestTimeout, 60_000),
    });
    this.o.configure?.(server);
    this.server = server;
    server.on('request', (req, res) => {
      // Tracked until the response is out, so close() can wait for answers that wait for acks.
      const finished = new Promise<void>((r) => res.once('close', r));
      this.open.add(finished);
      finished.then(() => this.open.delete(finished));
      this.handle(req, res, sc, finished).catch((err: unknown) => {
        this.ctx.log.error({ err }, `${this.o.name} request failed`);
        this.o.reply(res, 500, this.o.error('internal error'));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.listen.port, this.o.listen.address ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    this.ctx.log.info(
      { address: address.address, port: address.port, path: this.o.path },
      this.o.listeningMessage,
    );
    this.resolveListening(address);
  }

  /** Serves until the run stops, then refuses new requests and waits until handed-over records are accepted. */
  async serveUntilStopped(sc: SourceContext): Promise<void> {
    if (!sc.signal.aborted) await new Promise((r) => sc.signal.addEventListener('abort', r, { once: true }));
    this.stopping = true;
    this.server?.close();
    this.server?.closeIdleConnections();
    // Records already handed over must be accepted before the runtime drains.
    await Promise.allSettled([...this.pendingEmits]);
  }

  /** Drops the server and every connection at once. */
  closeNow(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }

  /** After every ack is in, pending requests are answered; then connections go. */
  async close(): Promise<void> {
    const deadline = new Promise((r) => setTimeout(r, 5_000).unref());
    await Promise.race([Promise.allSettled([...this.open]), deadline]);
    // Still unanswered after the deadline: dropping the connection makes the client send again.
    this.closeNow();
  }

  private async handle(
    req: IncomingMessage,
    res: ServerResponse,
    sc: SourceContext,
    finished: Promise<void>,
  ): Promise<void> {
    this.ctx.metrics.count('requests');
    if (this.stopping || sc.signal.aborted) {
      res.setHeader('Connection', 'close');
      if (this.o.stoppingIsBusy) this.ctx.metrics.count('busy');
      req.resume();
      return this.o.reply(res, 503, this.o.error('shutting down'), 5);
    }
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== this.o.path) {
      req.resume();
      return this.o.reply(res, 404, this.o.error('not found'));
    }
    if (req.method !== 'POST') {
      req.resume();
      res.setHeader('Allow', 'POST');
      return this.o.reply(res, 405, this.o.error('method not allowed'));
    }
    if (this.busy >= this.o.maxConcurrent) {
      this.ctx.metrics.count('busy');
      req.resume();
      return this.o.reply(res, 503, this.o.error('too many requests in flight'), 1);
    }
    // Held until the request is answered and its records are inside the pipeline (even after
    // a 503), so open requests and records waiting for room both count against the limit.
    this.busy++;
    try {
      await this.o.serve(req, res, sc, path);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      this.o.refused(req, res, err);
      if (err.status === 413 || err.status === 408) res.setHeader('Connection', 'close');
      this.o.reply(res, err.status, this.o.error(err.message));
    } finally {
      await finished;
      this.busy--;
    }
  }

  /** The request body, refused with 413 above `maxBody` and 408 when slower than the request timeout. */
  readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.o.maxBody;
    const declared = Number(req.headers['content-length']);
    if (declared > max) {
      req.resume();
      return Promise.reject(new HttpError(413, `body of ${declared} bytes exceeds max_body ${max}`));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const fail = (err: HttpError) => {
        cleanup();
        req.resume();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new HttpError(408, 'request body too slow')),
        this.o.requestTimeout,
      );
      const onData = (c: Buffer) => {
        size += c.length;
        if (size > max) return fail(new HttpError(413, `body exceeds max_body ${max}`));
        chunks.push(c);
      };
      const onEnd = () => {
        cleanup();
        resolve(Buffer.concat(chunks, size));
      };
      const onError = (e: Error) => fail(new HttpError(400, `request aborted: ${e.message}`));
      const onAborted = () => fail(new HttpError(400, 'request aborted'));
      const cleanup = () => {
        clearTimeout(timer);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('aborted', onAborted);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('aborted', onAborted);
    });
  }

  /**
   * Hands records on with `emit`, whose acks answer through the given function, and settles the
   * answer by the first of: the acks, the request timeout (503), the pipeline staying full for
   * the accept timeout (503) or the hand-over failing (503).
   */
  async deliver(res: ServerResponse, emit: (answer: Answer<Body>) => Promise<unknown>): Promise<void> {
    let answered = false;
    const answer: Answer<Body> = (status, body, retryAfter) => {
      if (answered) return;
      answered = true;
      clearTimeout(deadline);
      this.o.reply(res, status, body, retryAfter);
    };
    const deadline = setTimeout(() => {
      this.ctx.metrics.count('ack_timeouts');
      answer(503, this.o.error('acks too slow'), 5);
    }, this.o.requestTimeout);
    res.on('close', () => clearTimeout(deadline));

    const emitted = emit(answer);
    this.pendingEmits.add(emitted);
    const settled = emitted.finally(() => this.pendingEmits.delete(emitted));
    let full: ReturnType<typeof setTimeout> | undefined;
    const accepted = await Promise.race([
      settled.then(
        () => true,
        () => true,
      ),
      new Promise<false>((r) => {
        full = setTimeout(() => r(false), this.o.acceptTimeout);
      }),
    ]);
    clearTimeout(full);
    if (!accepted) {
      // Backpressure: the records still enter the pipeline once there is room, and may be
      // delivered twice when the client sends them again.
      this.ctx.metrics.count('busy');
      answer(503, this.o.error('pipeline full'), 1);
    }
    await settled.catch((err: unknown) => {
      this.ctx.log.error({ err }, `${this.o.name} emit failed`);
      answer(503, this.o.error('not accepted'), 1);
    });
  }
}

/** Writes a whole answer, unless the response is already out or gone. */
export function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  text: string,
  retryAfter?: number,
): void {
  if (res.headersSent || res.destroyed) return;
  res.statusCode = status;
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
  res.setHeader('Content-Type', contentType);
  res.end(`${text}\n`);
}

/** The first value of a request header. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
