/**
 * `sluice top`: the live view of `sluice run`, attached to a pipeline that runs in another
 * process, fed by polling its `/stats` endpoint. Read-only: `q` ends top, never the pipeline,
 * and nothing is ever sent to the endpoint but GET requests.
 */
import type { PipelineSnapshot } from '../runtime/metrics.ts';
import { renderPlainLines } from '../tui/plain.ts';

export interface TopFlags {
  /** Base URL of the pipeline's endpoint (`sluice run --http`). */
  http: string;
  /** Poll period, ms. */
  interval: number;
}

/** A request that takes longer than this counts as the endpoint being unreachable. */
const REQUEST_TIMEOUT_MS = 2000;

export async function topCommand(flags: TopFlags): Promise<number> {
  const stats = statsUrl(flags.http);
  if (!stats) {
    process.stderr.write(`sluice top: '${flags.http}' is not a URL (e.g. http://127.0.0.1:4195)\n`);
    return 2;
  }
  const interval = Math.max(100, flags.interval);
  const poller = new StatsPoller(stats, interval);
  const first = await poller.first((problem) =>
    process.stderr.write(`sluice top: ${problem}; retrying every ${seconds(interval)} (Ctrl-C to quit)\n`),
  );
  const screen = process.stdout.isTTY && process.stdin.isTTY;
  return screen ? attachScreen(poller) : attachPlain(poller, first, interval);
}

/** `<base>/stats`, keeping a path prefix the endpoint may sit under behind a proxy. */
function statsUrl(base: string): URL | undefined {
  const withScheme = /^[a-z]+:\/\//i.test(base) ? base : `http://${base}`;
  try {
    const url = new URL(withScheme);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/stats`;
    return url;
  } catch {
    return undefined;
  }
}

const seconds = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/**
 * Polls `/stats` on a timer, one request at a time, and keeps the last snapshot it got with a
 * notice while the endpoint does not answer (the pipeline stopped, or restarts).
 */
class StatsPoller {
  private readonly url: URL;
  private readonly interval: number;
  private latest: PipelineSnapshot | undefined;
  private problem: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(url: URL, interval: number) {
    this.url = url;
    this.interval = interval;
  }

  /** Polls until a first snapshot arrives, reporting each new problem once; then keeps polling. */
  async first(report: (problem: string) => void): Promise<PipelineSnapshot> {
    let told: string | undefined;
    for (;;) {
      await this.poll();
      if (this.latest) break;
      if (this.problem !== told) {
        told = this.problem;
        report(told ?? 'no answer');
      }
      await new Promise((r) => setTimeout(r, this.interval));
    }
    this.schedule();
    return this.latest;
  }

  /** The last snapshot, with a notice saying when the endpoint stopped answering. */
  current(): PipelineSnapshot {
    const snap = this.latest as PipelineSnapshot;
    if (!this.problem) return snap;
    return {
      ...snap,
      notice: `${this.problem}; showing the last answer, retrying every ${seconds(this.interval)}`,
    };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.poll().then(() => this.schedule()), this.interval);
  }

  private async poll(): Promise<void> {
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body: unknown = await res.json();
      if (!isSnapshot(body)) throw new Error('the answer is not a sluice pipeline snapshot');
      this.latest = body;
      this.problem = undefined;
    } catch (err) {
      this.problem = `cannot reach ${this.url.href}: ${reason(err)}`;
    }
  }
}

function reason(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${REQUEST_TIMEOUT_MS / 1000}s`;
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

function isSnapshot(v: unknown): v is PipelineSnapshot {
  const o = v as Partial<PipelineSnapshot> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.pipeline === 'string' &&
    typeof o.state === 'string' &&
    Array.isArray(o.stages)
  );
}

/** The live view of `sluice run`, drawn from the polled snapshots; its quit key ends top alone. */
async function attachScreen(poller: StatsPoller): Promise<number> {
  const { startTui } = await import('../tui/index.ts');
  let quit: () => void = () => undefined;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  const tui = startTui({ snapshot: () => poller.current(), onQuit: () => quit() });
  // Top has nothing to drain: a signal ends it like q does.
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  await quitting;
  poller.stop();
  await tui.stop(poller.current());
  return 0;
}

/** Without a terminal: the plain metric lines of `sluice run --no-tui`, until a signal. */
async function attachPlain(poller: StatsPoller, first: PipelineSnapshot, interval: number): Promise<number> {
  let prev = first;
  const timer = setInterval(() => {
    const cur = poller.current();
    const lines = renderPlainLines(prev, cur);
    if (cur.notice) lines.push(cur.notice);
    process.stdout.write(`${lines.join('\n')}\n`);
    prev = cur;
  }, interval);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(timer);
  poller.stop();
  return 0;
}
