import { describe, expect, it } from 'vitest';
import { validateText } from '../../src/spec/validate.ts';

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:consumo';

function check(source: string, sink = 'out: { type: stdout, from: [in] }') {
  const text = `version: 1\nname: t\nsources:\n  in:\n${source.replace(/^/gm, '    ')}\nsinks:\n  ${sink}\n`;
  return validateText('t.yaml', text, {}).diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
  }));
}

describe('sns source: static checks', () => {
  it('accepts a verified source with an allow-list silently', () => {
    expect(check(`type: sns\nlisten: { port: 8080, path: /sns }\ntopic_arn: ${TOPIC}`)).toEqual([]);
  });

  it('warns when verification is off or no topic is named', () => {
    const d = check('type: sns\nlisten: { port: 8080 }\nverify: false');
    expect(d.filter((x) => x.severity === 'warning').map((x) => x.code)).toEqual([
      'insecure-setting',
      'insecure-setting',
    ]);
    expect(d.map((x) => x.message).join('\n')).toMatch(/verification is off/);
    expect(d.map((x) => x.message).join('\n')).toMatch(/any topic/);
    expect(d.some((x) => x.severity === 'error')).toBe(false);
  });

  it('refuses raw delivery unless verification is turned off explicitly', () => {
    const d = check(`type: sns\nlisten: { port: 8080 }\ntopic_arn: ${TOPIC}\nraw: true`);
    expect(d).toContainEqual(expect.objectContaining({ severity: 'error', code: 'insecure-setting' }));
    const ok = check(`type: sns\nlisten: { port: 8080 }\ntopic_arn: ${TOPIC}\nraw: true\nverify: false`);
    expect(ok.some((x) => x.severity === 'error')).toBe(false);
  });

  it('needs topic_arn to subscribe', () => {
    const d = check('type: sns\nlisten: { port: 8080 }\nsubscribe: http://127.0.0.1:8080/');
    expect(d).toContainEqual(
      expect.objectContaining({
        severity: 'error',
        message: expect.stringMatching(/subscribe needs topic_arn/),
      }),
    );
  });
});

describe('sns sink and s3 sink: static checks', () => {
  const gen = `type: generate\ncount: 1\nfields: { a: '1' }`;

  it('needs group_id for a FIFO topic', () => {
    const d = check(gen, `out: { type: sns, from: [in], topic_arn: '${TOPIC}.fifo' }`);
    expect(d).toContainEqual(expect.objectContaining({ severity: 'error', code: 'aws-limit' }));
    expect(check(gen, `out: { type: sns, from: [in], topic_arn: '${TOPIC}.fifo', group_id: 'a' }`)).toEqual(
      [],
    );
  });

  it('rejects attribute names SNS reserves', () => {
    const d = check(
      gen,
      `out: { type: sns, from: [in], topic_arn: '${TOPIC}', attributes: { 'AWS.x': 'a' } }`,
    );
    expect(d).toContainEqual(expect.objectContaining({ severity: 'error', code: 'aws-limit' }));
  });

  it('rejects S3 parts under 5 MiB and buffers above the SNS batch limits', () => {
    const s3 = check(
      gen,
      `out: { type: s3, from: [in], bucket: b, key: 'k/{first_position}{ext}', part_size: 1MiB }`,
    );
    expect(s3).toContainEqual(expect.objectContaining({ severity: 'error', code: 'aws-limit' }));
    const sns = check(
      gen,
      `out: { type: sns, from: [in], topic_arn: '${TOPIC}', buffer: { max_records: 50 } }`,
    );
    expect(sns.some((x) => x.severity === 'error')).toBe(true);
  });

  it('rejects unknown key template fields in the s3 key', () => {
    const d = check(gen, `out: { type: s3, from: [in], bucket: b, key: 'k/{nope}' }`);
    expect(d.some((x) => x.severity === 'error')).toBe(true);
  });
});
