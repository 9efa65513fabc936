/**
 * Maps a character of a scalar's value back to its offset in the file, so an error inside an
 * expression or template points at the offending character, whatever the scalar's style:
 * plain or quoted (escapes, `''`, folded line breaks), literal `|` or folded `>` blocks, and
 * `${VAR:-default}` / `$${` substitutions. Returns undefined when the text cannot be matched
 * (the caller then points at the whole value).
 */
import { Scalar } from 'yaml';
import { REF } from './load.ts';

interface Decoded {
  text: string;
  /** offsets[i]: file offset of text[i]; offsets[text.length]: offset just past the value. */
  offsets: number[];
}

/**
 * `start`/`end`: the scalar's range in the file (quotes and block header included).
 * `value`: the value after `${...}` substitution (never from the environment here).
 */
export function valueOffsets(
  source: string,
  start: number,
  end: number,
  type: Scalar.Type | undefined,
  value: string,
): number[] | undefined {
  let decoded: Decoded | undefined;
  if (type === Scalar.BLOCK_LITERAL || type === Scalar.BLOCK_FOLDED)
    decoded = decodeBlock(source, start, end, type === Scalar.BLOCK_FOLDED);
  else if (type === Scalar.QUOTE_DOUBLE)
    decoded = decodeFlow(source, start + 1, closingQuote(source, start, end, '"'), 'double');
  else if (type === Scalar.QUOTE_SINGLE)
    decoded = decodeFlow(source, start + 1, closingQuote(source, start, end, "'"), 'single');
  else decoded = decodeFlow(source, start, end, 'plain');
  if (!decoded) return undefined;
  if (decoded.text.includes('$')) decoded = substitute(decoded);
  // Chomping only changes trailing line breaks; an error there is at the end either way.
  if (decoded.text.replace(/\n+$/, '') !== value.replace(/\n+$/, '')) return undefined;
  const out = decoded.offsets.slice(0, value.length);
  while (out.length < value.length) out.push(decoded.offsets[decoded.offsets.length - 1]);
  out.push(decoded.offsets[Math.min(value.length, decoded.text.length)]);
  return out;
}

function closingQuote(source: string, start: number, end: number, quote: string): number {
  const last = source.lastIndexOf(quote, end - 1);
  return last > start ? last : end;
}

const ESCAPES: Record<string, string> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  t: '\t',
  '\t': '\t',
  n: '\n',
  v: '\v',
  f: '\f',
  r: '\r',
  e: '\x1b',
  ' ': ' ',
  '"': '"',
  '/': '/',
  '\\': '\\',
  N: '\x85',
  _: '\xa0',
  L: '\u2028',
  P: '\u2029',
};
const HEX_LENGTH: Record<string, number> = { x: 2, u: 4, U: 8 };

/** Plain and quoted scalars: escapes, `''`, and line folding (a break is a space, empty lines are breaks). */
function decodeFlow(
  source: string,
  from: number,
  to: number,
  style: 'plain' | 'single' | 'double',
): Decoded | undefined {
  const chars: string[] = [];
  const offsets: number[] = [];
  /** Whether chars[i] is literal whitespace that a following line break strips. */
  const strippable: boolean[] = [];
  const push = (c: string, at: number, ws = false) => {
    chars.push(c);
    offsets.push(at);
    strippable.push(ws);
  };
  let i = from;
  while (i < to) {
    const c = source[i];
    if (style === 'double' && c === '\\') {
      const e = source[i + 1];
      if (e === '\n' || e === '\r') {
        // Escaped line break: nothing is inserted, the next line's indentation is dropped.
        i += e === '\r' && source[i + 2] === '\n' ? 3 : 2;
        while (i < to && (source[i] === ' ' || source[i] === '\t')) i++;
        continue;
      }
      const hex = HEX_LENGTH[e];
      if (hex) {
        const code = Number.parseInt(source.slice(i + 2, i + 2 + hex), 16);
        if (Number.isNaN(code)) return undefined;
        for (const unit of String.fromCodePoint(code).split('')) push(unit, i);
        i += 2 + hex;
        continue;
      }
      const plain = ESCAPES[e];
      if (plain === undefined) return undefined;
      push(plain, i);
      i += 2;
      continue;
    }
    if (style === 'single' && c === "'" && source[i + 1] === "'") {
      push("'", i);
      i += 2;
      continue;
    }
    if (c === '\n' || c === '\r') {
      while (strippable.length > 0 && strippable[strippable.length - 1]) {
        chars.pop();
        offsets.pop();
        strippable.pop();
      }
      const breakAt = i;
      let empty = 0;
      i += c === '\r' && source[i + 1] === '\n' ? 2 : 1;
      for (;;) {
        let j = i;
        while (j < to && (source[j] === ' ' || source[j] === '\t')) j++;
        if (source[j] === '\n' || source[j] === '\r') {
          empty++;
          i = j + (source[j] === '\r' && source[j + 1] === '\n' ? 2 : 1);
          continue;
        }
        i = j;
        break;
      }
      if (empty === 0) push(' ', breakAt);
      else for (let k = 0; k < empty; k++) push('\n', breakAt);
      continue;
    }
    push(c, i, c === ' ' || c === '\t');
    i++;
  }
  offsets.push(to);
  return { text: chars.join(''), offsets };
}

/** Literal and folded block scalars: a header line, then lines at one indentation. */
function decodeBlock(source: string, start: number, end: number, folded: boolean): Decoded | undefined {
  const headerEnd = source.indexOf('\n', start);
  if (headerEnd < 0 || headerEnd >= end) return { text: '', offsets: [end] };
  const header = source.slice(start, headerEnd).replace(/#.*$/, '').trim();
  const lines: { text: string; at: number }[] = [];
  let at = headerEnd + 1;
  while (at < end) {
    let nl = source.indexOf('\n', at);
    if (nl < 0 || nl > end) nl = end;
    lines.push({ text: source.slice(at, nl).replace(/\r$/, ''), at });
    at = nl + 1;
  }
  // An explicit indentation indicator counts from the parent's indentation, which is not known
  // here: leave those to the caller's fallback.
  if (/[1-9]/.test(header)) return undefined;
  const first = lines.find((l) => l.text.trim() !== '');
  const indent = first ? first.text.length - first.text.trimStart().length : 0;
  const chars: string[] = [];
  const offsets: number[] = [];
  const add = (text: string, from: number) => {
    for (let k = 0; k < text.length; k++) {
      chars.push(text[k]);
      offsets.push(from + k);
    }
  };
  let pendingEmpty = 0;
  let previous: 'none' | 'text' | 'spaced' = 'none';
  let lastBreak = headerEnd;
  for (const line of lines) {
    const content = line.text.length > indent ? line.text.slice(indent) : '';
    if (line.text.slice(0, indent).trim() !== '') break;
    if (content === '') {
      pendingEmpty++;
      lastBreak = line.at + line.text.length;
      continue;
    }
    const spaced = content[0] === ' ' || content[0] === '\t';
    let breaks: number;
    if (previous === 'none') breaks = pendingEmpty;
    else if (!folded) breaks = pendingEmpty + 1;
    else if (previous === 'text' && !spaced) breaks = pendingEmpty > 0 ? pendingEmpty : -1;
    else breaks = pendingEmpty + 1;
    if (breaks < 0) {
      chars.push(' ');
      offsets.push(lastBreak);
    } else {
      for (let k = 0; k < breaks; k++) {
        chars.push('\n');
        offsets.push(lastBreak);
      }
    }
    add(content, line.at + indent);
    lastBreak = line.at + line.text.length;
    pendingEmpty = 0;
    previous = spaced ? 'spaced' : 'text';
  }
  chars.push('\n');
  offsets.push(lastBreak);
  offsets.push(lastBreak);
  return { text: chars.join(''), offsets };
}

/** Applies `$${` and `${VAR:-default}` to decoded text, keeping each kept character's offset. */
function substitute(d: Decoded): Decoded {
  const chars: string[] = [];
  const offsets: number[] = [];
  let last = 0;
  const copy = (from: number, to: number) => {
    for (let k = from; k < to; k++) {
      chars.push(d.text[k]);
      offsets.push(d.offsets[k]);
    }
  };
  for (const m of d.text.matchAll(new RegExp(REF.source, 'g'))) {
    copy(last, m.index);
    if (m[0] === '$${') copy(m.index + 1, m.index + 3);
    else if (m[2] !== undefined) {
      // Only defaults reach here: a value from the environment is never mapped.
      const from = m.index + 2 + m[1].length + 2;
      copy(from, from + m[2].length);
    }
    last = m.index + m[0].length;
  }
  copy(last, d.text.length);
  offsets.push(d.offsets[d.text.length]);
  return { text: chars.join(''), offsets };
}
