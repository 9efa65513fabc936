/**
 * Literal secrets in spec text: the password of a URL's userinfo, AWS access key ids and PEM
 * private keys (a TLS client key pasted into an option). The
 * validator reports them; the formatter masks them wherever it echoes a line of the file, so a
 * code frame never shows what the diagnostic asks to remove.
 */

/** A range of a string, `end` exclusive. */
export interface TextRange {
  start: number;
  end: number;
  kind: 'url-password' | 'aws-key-id' | 'private-key';
}

/**
 * `scheme://user:password@`: the password runs to the last `@` before the host, as URL
 * parsers read it (a `/`, `?`, `#` or blank ends the authority, so `host:8080/a@b` is no
 * userinfo). The scheme may follow any non-alphanumeric character, so a URL inside
 * `${VAR:-…}`, quotes or a `jdbc:` prefix is found too. Schemes are short: bounding their
 * length keeps the search linear on long dotted text.
 */
const URL_PASSWORD = /(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/[^\s/?#@:]*:([^\s/?#]+)@/g;
/** Passwords are short; the bound keeps a long value with many URLs linear to search. */
const MAX_PASSWORD = 1024;
/** What ends a URL written in YAML: a blank, a quote, or a flow collection's punctuation. */
const END_OF_WORD = /[\s'",\]}]/;
const AWS_KEY_ID = /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g;
/** A PEM private key (PKCS#8, RSA, EC, encrypted or not), from its header to its footer or the end. */
const PRIVATE_KEY =
  /-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[^-]|-(?!----END))*(?:-----END [A-Z ]*PRIVATE KEY-----)?/g;

/** Every literal secret in `text`, in order. */
export function findSecrets(text: string): TextRange[] {
  const found: TextRange[] = [];
  for (const m of text.matchAll(URL_PASSWORD)) {
    // The password is the last group, right before the final `@` of the match.
    const at = (m.index ?? 0) + m[0].length - 1;
    const start = at - m[1].length;
    // A password written with a raw `/` or `#` (`p@ss/w0rd@host`) parses as a shorter one, yet
    // all of it is secret: mask up to the last `@` of the word.
    const tail = text.slice(at, at + MAX_PASSWORD);
    const word = tail.search(END_OF_WORD);
    const last = text.lastIndexOf('@', at + (word < 0 ? tail.length : word));
    found.push({ start, end: Math.max(at, last), kind: 'url-password' });
  }
  for (const m of text.matchAll(AWS_KEY_ID)) {
    const start = m.index ?? 0;
    found.push({ start, end: start + m[0].length, kind: 'aws-key-id' });
  }
  for (const m of text.matchAll(PRIVATE_KEY)) {
    const start = m.index ?? 0;
    found.push({ start, end: start + m[0].length, kind: 'private-key' });
  }
  return found.sort((a, b) => a.start - b.start);
}

/** `text` with the characters of each range replaced by `*`: same length, so columns stay put. */
export function maskRanges(text: string, ranges: readonly { start: number; end: number }[]): string {
  let out = text;
  for (const r of ranges) {
    // Offsets are UTF-16 indices, as the file's columns are.
    const start = Math.max(0, r.start);
    const end = Math.min(out.length, r.end);
    if (end > start) out = out.slice(0, start) + '*'.repeat(end - start) + out.slice(end);
  }
  return out;
}
