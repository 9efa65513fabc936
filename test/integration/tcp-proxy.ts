/**
 * A TCP proxy in front of a real service that a test can break on purpose: `blackhole()` keeps
 * connections open but forwards nothing (a partition, a frozen server), `refuse()` closes every
 * connection and the port (a server that is down), `heal()` listens and forwards again.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private black = false;
  port = 0;
  readonly targetHost: string;
  readonly targetPort: number;

  constructor(targetHost: string, targetPort: number) {
    this.targetHost = targetHost;
    this.targetPort = targetPort;
  }

  async start(port = 0): Promise<void> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  private accept(client: Socket): void {
    const upstream = connect(this.targetPort, this.targetHost);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (d) => {
      if (!this.black) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!this.black) client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  blackhole(): void {
    this.black = true;
  }

  async refuse(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async heal(): Promise<void> {
    this.black = false;
    if (!this.server) await this.start(this.port);
  }

  async stop(): Promise<void> {
    await this.refuse();
  }
}
