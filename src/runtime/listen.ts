/**
 * Where the operations endpoint listens. Apart from runtime/http.ts, which loads prom-client:
 * the command line needs the default address and the parser on every start, the endpoint only
 * when it is switched on.
 */

export interface ListenAddress {
  host: string;
  port: number;
}

/** Where `sluice run --http` listens when given no address, and where `sluice top` looks. */
export const DEFAULT_HTTP_ADDRESS = '127.0.0.1:4195';

/**
 * `[host:]port`, `:port` or `[v6]:port`. A bare port means loopback: the endpoint shows stage
 * names, error reasons and record counts, which are for the machine's operators unless the
 * spec names a host that others can reach.
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)?:)?(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65_535) return undefined;
  const host = m[1] ? m[1].replace(/^\[(.*)\]$/, '$1') : '127.0.0.1';
  return { host, port };
}
