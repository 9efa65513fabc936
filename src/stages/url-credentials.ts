/**
 * Checks that the credentials in a connection URL (`scheme://user:password@host/...`) are
 * percent-encoded. A password with a bare `#`, `/` or `?` ends the URL's authority early, so
 * every URL parser reads part of the password as the host (`mysql://u:p@ss#1@db/x` connects to
 * host `ss`) and the connection fails with a confusing DNS error that quotes the secret. A bare
 * `%` that starts no escape makes decoding the password throw.
 *
 * Several `@` before the host are left alone: URL parsers (WHATWG, Python's urlsplit) take the
 * last `@` as the end of the credentials, so such a URL means what it says.
 *
 * The URL usually comes from the environment and holds a secret, so the message never quotes it,
 * not even in part, nor says which character is wrong.
 */

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** What follows the credentials: a host name, IPv4 or [IPv6] address, an optional port, then the end, a path or a query. */
const HOST_THEN_REST = /^(\[[0-9a-f:.]+\]|[a-z0-9._~-]*)(:\d*)?([/?#]|$)/i;
const BARE_PERCENT = /%(?![0-9a-f]{2})/i;

export const ENCODE_HINT =
  "percent-encode the user name and password (JavaScript's encodeURIComponent: '@' → %40, '#' → %23, '/' → %2F, '?' → %3F, '%' → %25)";

/**
 * Why the URL's credentials cannot be read as intended, or undefined when they can (or the
 * URL holds none). The message names no part of the URL.
 */
export function urlCredentialProblem(url: string): string | undefined {
  const scheme = SCHEME.exec(url);
  if (!scheme) return undefined;
  const rest = url.slice(scheme[0].length);
  const at = rest.lastIndexOf('@');
  if (at < 0) return undefined;
  const authorityEnd = rest.search(/[/?#]/);
  const credentials = rest.slice(0, at);
  if (authorityEnd >= 0 && authorityEnd < at && HOST_THEN_REST.test(rest.slice(at + 1))) {
    return `the URL's password or user name holds a character that ends the host part (such as '#', '/' or '?'), so part of the password would be taken for the host: ${ENCODE_HINT}`;
  }
  if (authorityEnd >= 0 && authorityEnd < at) return undefined;
  if (BARE_PERCENT.test(credentials)) {
    return `the URL's password or user name holds a '%' that is not a percent-escape: ${ENCODE_HINT}`;
  }
  return undefined;
}
