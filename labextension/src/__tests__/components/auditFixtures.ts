/** Test fixtures shared by the audit specs (not a spec itself). */
import { IAuditRecord } from '../../tokens';

/** A record; seq n is n seconds before 2026-03-04T12:00:00Z unless `time` is given. */
export function makeRecord(seq: number, overrides: Partial<IAuditRecord> = {}): IAuditRecord {
  return {
    seq,
    time: new Date(Date.UTC(2026, 2, 4, 12, 0, 0) - seq * 1000).toISOString(),
    event_type: 'decision',
    user: 'alice',
    action: 'read',
    target: 'data/sales.csv',
    dataset: 'sales',
    label: 'confidential',
    decision: 'allow',
    reasons: [],
    purpose: null,
    justification: null,
    kernel_id: null,
    session_id: null,
    notebook: null,
    cell_id: null,
    msg_id: null,
    details: {},
    prev_mac: 'p',
    mac: 'm',
    ...overrides
  };
}
