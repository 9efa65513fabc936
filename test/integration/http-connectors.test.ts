/**
 * The http sink and the http_server source against foreign peers: Python's http.server receives
 * what the sink sends (answering 429 with Retry-After once, and 400 to any batch holding a bad
 * record), and curl posts to the source, whose records flow on through the sink to Python.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pipeline } from '../../src/runtime/engine.ts';
import { validateText } from '../../src/spec/validate.ts';
import { tempDir } from '../runtime/helpers.ts';

const run = promisify(execFile);

/** Logs every request as a JSON line; 429 + Retry-After: 1 to the first, 400 to batches with "bad". */
const RECEIVER = `
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[1], "a", buffering=1)
state = {"n": 0}
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        state["n"] += 1
        lines = [json.loads(l) for l in body.splitlines() if l]
        if state["n"] == 1:
            status = 429
        elif any(r.get("bad") for r in lines):
            status = 400
        else:
            status = 200
        log.write(json.dumps({"at": time.time(), "status": status, "records": lines,
            "x_source": self.headers.get("X-Source"), "x_first": self.headers.get("X-First"),
            "content_type": self.headers.get("Content-Type")}) + "\\n")
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"bad rec" if status == 400 else b"ok     ")
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`;

interface Logged {
  at: number;
  status: number;
  records: { id: number; bad?: boolean }[];
  x_source: string | null;
  x_first: string | null;
  content_type: string;
}

let receiver: ChildProcess;
let receiverUrl = '';
let logFile = '';

beforeAll(async () => {
  logFile = join(tempDir(), 'requests.ndjson');
  receiver = spawn(process.env.SERVICES_PYTHON || 'python3', ['-c', RECEIVER, logFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>((resolve, reject) => {
    receiver.once('error', (e) => reject(new Error(`python3 is needed for this test: ${e.message}`)));
    createInterface({ input: receiver.stdout as NodeJS.ReadableStream }).once('line', resolve);
  });
  receiverUrl = `http://127.0.0.1:${port}/ingest`;
});

afterAll(() => {
  receiver?.kill();
});

const logged = (): Logged[] =>
  readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Logged);

function pipelineOf(yaml: string, env: Record<string, string> = {}): Pipeline {
  const { spec, diagnostics } = validateText('http.yaml', yaml, env);
  if (!spec) throw new Error(diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`).join('\n'));
  return new Pipeline(spec, { stateDir: tempDir() });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('http sink → Python http.server', () => {
  it('waits out a 429 for its Retry-After, isolates the record a 400 refuses, delivers the rest once each', async () => {
    const p = pipelineOf(`
version: 1
name: http-out
runtime: { batch_size: 50 }
sources:
  gen: { type: generate, count: 200, fields: { id: 'i', bad: 'i == 57' } }
sinks:
  out:
    type: http
    from: [gen]
    url: ${receiverUrl}
    headers: { X-Source: '"sluice"', X-First: 'string(id)' }
    buffer: { max_records: 50, max_age: 50ms }
    max_in_flight: 1
    retry: { backoff: 10ms, max_backoff: 50ms }
`);
    const result = await p.run();
    expect(result.ok, result.error).toBe(true);
    expect(result.errorRecords).toBe(1);
    expect(result.deadLettered).toBe(1);
    const requests = logged();
    // The first request got 429; the engine's backoff is 10 ms, so only Retry-After explains the wait.
    expect(requests[0].status).toBe(429);
    expect(requests[1].at - requests[0].at).toBeGreaterThan(0.9);
    const delivered = requests.filter((r) => r.status === 200).flatMap((r) => r.records.map((x) => x.id));
    expect(delivered.sort((a, b) => a - b)).toEqual([...Array(200).keys()].filter((i) => i !== 57));
    // Refused batches were split down to the bad record alone.
    const refused = requests.filter((r) => r.status === 400);
    expect(refused.at(-1)?.records).toEqual([{ id: 57, bad: true }]);
    const ok = requests.find((r) => r.status === 200);
    expect(ok?.x_source).toBe('sluice');
    expect(ok?.x_first).toBe(String(ok?.records[0].id));
    expect(ok?.content_type).toBe('application/x-ndjson');
  }, 30_000);
});

describe('curl → http_server source → http sink → Python', () => {
  const token = 'test-token-1';
  const secret = 'test-hmac-secret';
  let port = 0;
  let pipeline: Pipeline;
  let done: Promise<unknown>;

  beforeAll(async () => {
    port = await freePort();
    pipeline = pipelineOf(
      `
version: 1
name: http-in
sources:
  ingest:
    type: http_server
    listen: { port: ${port}, path: /in }
    bearer_token: \${INGEST_TOKEN}
    hmac_secret: \${INGEST_HMAC}
    max_body: 4KiB
    max_depth: 3
sinks:
  out:
    type: http
    from: [ingest]
    url: ${receiverUrl}
    buffer: { max_age: 20ms }
  bad: { type: file, from: [ingest.errors], dir: ${tempDir()}, path: 'bad_{seq}{ext}', buffer: { max_age: 20ms } }
`,
      { INGEST_TOKEN: token, INGEST_HMAC: secret },
    );
    done = pipeline.run();
    for (let i = 0; i < 100; i++) {
      const probe = await curl('GET', '', {}).catch(() => undefined);
      if (probe) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    pipeline?.stop();
    await done;
  });

  async function curl(
    method: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: string }> {
    const args = ['-sS', '-X', method, '-o', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${port}/in`];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    if (body) args.push('--data-binary', body);
    const { stdout } = await run('curl', args);
    const at = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) };
  }

  const signed = (body: string) => ({
    Authorization: `Bearer ${token}`,
    'X-Hub-Signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    'Content-Type': 'application/x-ndjson',
  });

  it('answers 200 only once the records are durable at the receiver; a bad line goes to the error output', async () => {
    const body = '{"id": 1001}\n{"id": 1002\n{"id": 1003}\n{"id": {"a": {"b": {"c": 1}}}}\n';
    const res = await curl('POST', body, signed(body));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ accepted: 2, failed: 2 });
    // Already there when curl got its answer.
    const ids = logged()
      .filter((r) => r.status === 200)
      .flatMap((r) => r.records.map((x) => x.id));
    expect(ids).toEqual(expect.arrayContaining([1001, 1003]));
  });

  it('refuses a missing token, a wrong signature, another path, GET and a body over max_body', async () => {
    const body = '{"id": 2001}\n';
    expect(
      (await curl('POST', body, { 'X-Hub-Signature-256': signed(body)['X-Hub-Signature-256'] })).status,
    ).toBe(401);
    expect((await curl('POST', body, { ...signed(body), 'X-Hub-Signature-256': 'sha256=00' })).status).toBe(
      401,
    );
    expect((await curl('GET', '', signed(''))).status).toBe(405);
    const big = `${JSON.stringify({ id: 2002, pad: 'x'.repeat(5000) })}\n`;
    expect((await curl('POST', big, signed(big))).status).toBe(413);
    expect(logged().some((r) => r.records.some((x) => x.id >= 2001))).toBe(false);
  });
});
