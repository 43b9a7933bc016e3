import { errorMessage, postJSON, queryString } from '../handler';

describe('postJSON', () => {
  it('posts the body as JSON', () => {
    const init = postJSON({ paths: ['a', 'b'] });
    expect(init.method).toBe('POST');
    expect(init.body).toBe('{"paths":["a","b"]}');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });
});

describe('errorMessage', () => {
  it("uses the error's message (requestAPI puts the server's there)", () => {
    expect(errorMessage(new Error('reason is required'))).toBe('reason is required');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(undefined)).toBe('unknown error');
  });
});

describe('queryString', () => {
  it('keeps non-empty values, encoded', () => {
    expect(queryString({ q: 'pat ients', purpose: '' })).toBe('?q=pat+ients');
    expect(queryString({ q: '', purpose: null })).toBe('');
    expect(queryString({ q: 'a&b', purpose: 'x' })).toBe('?q=a%26b&purpose=x');
  });
});
