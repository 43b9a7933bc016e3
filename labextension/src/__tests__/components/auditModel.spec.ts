import { AuditPagedModel } from '../../components/auditModel';
import { IAuditQueryParams } from '../../components/auditQuery';
import { IAuditPage, IAuditRecord } from '../../tokens';
import { makeRecord } from './auditFixtures';

/** A fake server over `total` records (seq total..1, newest first), with controllable replies. */
function fakeServer(total: number) {
  const calls: IAuditQueryParams[] = [];
  const pending: { resolve: () => void; reject: (e: Error) => void; params: IAuditQueryParams }[] = [];
  const fetchPage = jest.fn(
    (params: IAuditQueryParams, signal?: AbortSignal): Promise<IAuditPage> => {
      calls.push(params);
      return new Promise<IAuditPage>((resolve, reject) => {
        const answer = () => {
          const limit = params.limit ?? 100;
          const start = params.after ?? total + 1;
          const records: IAuditRecord[] = [];
          for (let seq = start - 1; seq >= 1 && records.length < limit; seq--) {
            records.push(makeRecord(seq));
          }
          resolve({
            records,
            next: records.length === limit ? records[records.length - 1].seq : null
          });
        };
        signal?.addEventListener('abort', () => reject(new Error('aborted')));
        pending.push({ resolve: answer, reject, params });
      });
    }
  );
  const flush = async () => {
    while (pending.length) {
      pending.shift()!.resolve();
      await Promise.resolve();
    }
    await new Promise(r => setTimeout(r, 0));
  };
  return { fetchPage, calls, pending, flush };
}

describe('AuditPagedModel', () => {
  it('loads the first page newest first with the page size', async () => {
    const server = fakeServer(1000);
    const model = new AuditPagedModel({ fetchPage: server.fetchPage, pageSize: 200 });
    const first = jest.fn();
    model.firstPageLoaded.connect(first);
    const loading = model.setFilters({ dataset: 'sales', user: '' });
    expect(model.state).toBe('loading');
    await server.flush();
    await loading;
    expect(server.calls[0]).toEqual({ dataset: 'sales', limit: 200, order: 'desc' });
    expect(model.records).toHaveLength(200);
    expect(model.records[0].seq).toBe(1000);
    expect(model.next).toBe(801);
    expect(model.state).toBe('idle');
    expect(first).toHaveBeenCalledTimes(1);
  });

  it('pages with the keyset cursor after=next', async () => {
    const server = fakeServer(450);
    const model = new AuditPagedModel({ fetchPage: server.fetchPage, pageSize: 200 });
    void model.setFilters({});
    await server.flush();
    void model.loadMore();
    await server.flush();
    expect(server.calls[1]).toEqual({ limit: 200, order: 'desc', after: 251 });
    expect(model.records).toHaveLength(400);
    expect(model.records[200].seq).toBe(250);
    expect(model.indexOf(250)).toBe(200);
  });

  it('keeps one request in flight', async () => {
    const server = fakeServer(1000);
    const model = new AuditPagedModel({ fetchPage: server.fetchPage, pageSize: 100 });
    void model.setFilters({});
    await server.flush();
    const a = model.loadMore();
    const b = model.loadMore();
    const c = model.loadMore();
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(server.fetchPage).toHaveBeenCalledTimes(2);
    await server.flush();
    expect(model.records).toHaveLength(200);
  });

  it('stops at the end of the log (next null)', async () => {
    const server = fakeServer(250);
    const model = new AuditPagedModel({ fetchPage: server.fetchPage, pageSize: 200 });
    void model.setFilters({});
    await server.flush();
    void model.loadMore();
    await server.flush();
    expect(model.records).toHaveLength(250);
    expect(model.next).toBeNull();
    expect(model.state).toBe('end');
    await model.loadMore();
    expect(server.fetchPage).toHaveBeenCalledTimes(2);
  });

  it('resets on new filters and ignores the stale reply', async () => {
    const server = fakeServer(1000);
    const model = new AuditPagedModel({ fetchPage: server.fetchPage, pageSize: 100 });
    void model.setFilters({});
    await server.flush();
    void model.loadMore(); // in flight when the filters change
    const stale = server.pending[0];
    void model.setFilters({ decision: 'deny' });
    expect(model.records).toHaveLength(0);
    expect(model.filters).toEqual({ decision: 'deny' });
    stale.resolve(); // already aborted: rejected, and ignored either way
    await server.flush();
    expect(model.records).toHaveLength(100);
    expect(model.records[0].seq).toBe(1000);
    expect(server.calls[2]).toEqual({ decision: 'deny', limit: 100, order: 'desc' });
    expect(model.error).toBeNull();
  });

  it('shows an empty log as the end with no records', async () => {
    const server = fakeServer(0);
    const model = new AuditPagedModel({ fetchPage: server.fetchPage, pageSize: 100 });
    void model.setFilters({ user: 'nobody' });
    await server.flush();
    expect(model.records).toHaveLength(0);
    expect(model.state).toBe('end');
  });

  it('keeps the server message on error and retries', async () => {
    let fail = true;
    const fetchPage = jest.fn(async () => {
      if (fail) {
        throw new Error('dana is not a data steward; the audit log is for stewards');
      }
      return { records: [makeRecord(3), makeRecord(2)], next: null } as IAuditPage;
    });
    const model = new AuditPagedModel({ fetchPage, pageSize: 2 });
    await model.setFilters({});
    expect(model.state).toBe('error');
    expect(model.error).toBe('dana is not a data steward; the audit log is for stewards');
    fail = false;
    await model.retry();
    expect(model.error).toBeNull();
    expect(model.records.map(r => r.seq)).toEqual([3, 2]);
  });

  it('clamps the page size to the server maximum', () => {
    const model = new AuditPagedModel({ fetchPage: jest.fn(), pageSize: 99999 });
    expect(model.pageSize).toBe(5000);
    model.pageSize = 0;
    expect(model.pageSize).toBe(1);
  });
});
