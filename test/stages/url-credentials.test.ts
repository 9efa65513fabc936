import { describe, expect, it } from 'vitest';
import { urlCredentialProblem } from '../../src/stages/url-credentials.ts';

describe('urlCredentialProblem', () => {
  it('accepts URLs whose credentials are percent-encoded or absent', () => {
    for (const url of [
      'mysql://root@127.0.0.1:3306/fazendas',
      'mysql://u:p%40ss%231@host/db',
      'mysql://u:pw@host/db?charset=utf8mb4',
      'mysql://host/db',
      'mysql://[::1]:3306/db',
      'kafka://broker:9092',
      'not a url',
    ]) {
      expect(urlCredentialProblem(url), url).toBeUndefined();
    }
  });

  it('accepts several @ before the host: every parser takes the last one', () => {
    expect(urlCredentialProblem('mysql://u:p@ss@host/db')).toBeUndefined();
    expect(new URL('mysql://u:p@ss@host/db').hostname).toBe('host');
  });

  it('flags a #, / or ? in the password, which would make part of it the host', () => {
    for (const url of [
      'mysql://u:p@ss#1@host/db',
      'mysql://u:p#1@host/db',
      'mysql://u:p/1@host:3306/db',
      'mysql://u:p?1@host',
      'mysql://u:p#1@[::1]:3306/db',
    ]) {
      expect(urlCredentialProblem(url), url).toMatch(/percent-encode/);
    }
    // What a parser makes of the first one: the host is a piece of the password.
    expect(new URL('mysql://u:p@ss#1@host/db').hostname).toBe('ss');
  });

  it('flags a % that starts no escape', () => {
    expect(urlCredentialProblem('mysql://u:100%@host/db')).toMatch(/'%' that is not a percent-escape/);
    expect(urlCredentialProblem('mysql://u:p%2@host/db')).toMatch(/percent-encode/);
  });

  it('never quotes the URL or a piece of it', () => {
    const secret = 'S3cr#t/pa?ss%';
    const message = urlCredentialProblem(`mysql://user:${secret}@db.internal:3306/app`) ?? '';
    expect(message).not.toBe('');
    for (const piece of ['S3cr', 't/pa', 'pa?ss', 'db.internal', 'user:'])
      expect(message).not.toContain(piece);
  });
});
