// JupyterLab's apputils ships ES modules jest cannot load: mock the dialog.
jest.mock('@jupyterlab/apputils', () => ({
  showDialog: jest.fn(async () => ({ button: { accept: true }, value: null })),
  Dialog: {
    okButton: (options: object = {}) => ({ label: 'OK', accept: true, ...options }),
    cancelButton: (options: object = {}) => ({ label: 'Cancel', accept: false, ...options })
  }
}));

import { showDialog } from '@jupyterlab/apputils';
import { Signal } from '@lumino/signaling';

import {
  GovernanceIndicator,
  GovernanceView,
  IndicatorState,
  NO_KERNEL_TEXT,
  RefreshScheduler,
  formatEffects,
  indicatorText,
  indicatorTitle,
  indicatorView,
  openGovernanceDialog,
  purposeOptions,
  readDatasets,
  shorten
} from '../../components/notebookIndicator';
import { AUDIT_EVENT_SCHEMA_ID, IKernelGovernance } from '../../tokens';

function gov(overrides: Partial<IKernelGovernance> = {}): IKernelGovernance {
  return {
    kernel_id: 'k1',
    notebook: 'analysis.ipynb',
    guarded: true,
    purpose: 'treatment-research',
    purposes: ['treatment-research', 'quality-audit'],
    highest: { label: 'restricted', rank: 3, color: '' },
    datasets: [
      { dataset: 'patients', label: 'restricted', rank: 3, effects: { allow: 2, redact: 1 }, last_seq: 9 },
      { dataset: 'visits', label: 'confidential', rank: 2, effects: { allow: 1 }, last_seq: 7 }
    ],
    denials: [],
    version: 1,
    ...overrides
  };
}

const denial = {
  msg_id: 'm1',
  cell_id: 'c1',
  dataset: 'registry',
  label: 'restricted',
  target: '/srv/registry.csv',
  effect: 'deny' as const,
  message: "alice may not read 'registry' (restricted data): no rule allows it.",
  reasons: ['no rule allows it.'],
  ask: 'Rex Registry <rex@example.org>',
  audit_seq: 11,
  time: '2026-11-21T10:00:00Z'
};

// ---------------------------------------------------------------------------
// Fakes: a session context and a scriptable server.
// ---------------------------------------------------------------------------

class FakeSessionContext {
  kernelId: string | null = 'k1';
  kernelChanged = new Signal<this, unknown>(this);
  statusChanged = new Signal<this, string>(this);
  get session() {
    return { kernel: this.kernelId ? { id: this.kernelId } : null };
  }
}

interface IPending {
  endPoint: string;
  init?: RequestInit;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/** A server whose answers the test releases one by one. */
function manualServer() {
  const pending: IPending[] = [];
  const request = jest.fn(
    (endPoint: string, init?: RequestInit) =>
      new Promise((resolve, reject) => pending.push({ endPoint, init, resolve, reject }))
  );
  return { request: request as any, mock: request, pending };
}

/** A server that answers at once from a function. */
function autoServer(answer: (endPoint: string, init?: RequestInit) => unknown) {
  const request = jest.fn(async (endPoint: string, init?: RequestInit) => {
    const value = answer(endPoint, init);
    if (value instanceof Error) {
      throw value;
    }
    return value;
  });
  return { request: request as any, mock: request };
}

async function flushPromises(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
}

const notebook = {};
let indicator: GovernanceIndicator | null = null;

afterEach(() => {
  indicator?.dispose();
  indicator = null;
  jest.useRealTimers();
});

// ---------------------------------------------------------------------------

describe('formatting', () => {
  it('formats effects in policy order', () => {
    expect(formatEffects({ redact: 1, allow: 2 })).toBe('2 allowed, 1 redacted');
    expect(formatEffects({ deny: 1, justify: 1, zzz: 3 })).toBe(
      '1 with justification, 1 denied, 3 zzz'
    );
    expect(formatEffects({})).toBe('no reads');
  });

  it('counts datasets read, not those only denied', () => {
    const g = gov({
      datasets: [
        ...gov().datasets,
        { dataset: 'registry', label: 'restricted', rank: 3, effects: { deny: 2 }, last_seq: 11 }
      ]
    });
    expect(readDatasets(g).map(d => d.dataset)).toEqual(['patients', 'visits']);
  });

  it('shortens long text with an ellipsis', () => {
    expect(shorten('short', 10)).toBe('short');
    expect(shorten('a-very-long-purpose-name-indeed', 10)).toBe('a-very-lo…');
  });

  it('says label, datasets and purpose', () => {
    expect(indicatorText(gov())).toBe(
      'restricted · 2 datasets · purpose: treatment-research'
    );
  });

  it('says when nothing governed was read, and counts denials', () => {
    expect(indicatorText(gov({ highest: null, datasets: [], purpose: null }))).toBe(
      'No governed data read'
    );
    expect(
      indicatorText(gov({ highest: null, datasets: [], purpose: null, denials: [denial] }))
    ).toBe('No governed data read · 1 denied');
  });

  it('shortens a long purpose in the toolbar only', () => {
    const long = 'longitudinal-outcomes-research-2026';
    expect(indicatorText(gov({ purpose: long }))).toBe(
      'restricted · 2 datasets · purpose: longitudinal-outcomes-r…'
    );
    expect(indicatorTitle(gov({ purpose: long }))).toContain(`Purpose: ${long}`);
  });

  it('lists every dataset with label and effects in the tooltip', () => {
    const lines = indicatorTitle(gov({ denials: [denial], purpose: null })).split('\n');
    expect(lines).toContain('Highest label read: restricted');
    expect(lines).toContain('Purpose: none declared');
    expect(lines).toContain('  patients (restricted): 2 allowed, 1 redacted');
    expect(lines).toContain('  visits (confidential): 1 allowed');
    expect(lines.find(l => l.startsWith('Denied reads: 1'))).toContain('registry');
  });

  it('has clear no-kernel and not-governed states', () => {
    expect(indicatorView({ kind: 'nokernel' })).toMatchObject({
      text: NO_KERNEL_TEXT,
      label: 'none',
      state: 'nokernel'
    });
    const ungoverned = indicatorView({ kind: 'governance', governance: gov({ guarded: false }) });
    expect(ungoverned.text).toBe('Not governed');
    expect(ungoverned.title).toContain('This kernel is not governed');
    expect(ungoverned.label).toBe('none');
    expect(indicatorView({ kind: 'unavailable', reason: 'boom' }).title).toContain('boom');
  });

  it('offers "No purpose declared" first, then the purposes', () => {
    expect(purposeOptions(gov())).toEqual([
      { value: '', text: 'No purpose declared' },
      { value: 'treatment-research', text: 'treatment-research' },
      { value: 'quality-audit', text: 'quality-audit' }
    ]);
    expect(purposeOptions(gov({ purpose: 'legacy', purposes: [] })).map(o => o.value)).toEqual([
      '',
      'legacy'
    ]);
  });
});

describe('RefreshScheduler', () => {
  beforeEach(() => jest.useFakeTimers());

  it('coalesces a burst of schedules into one run after the delay', async () => {
    const run = jest.fn(async () => undefined);
    const scheduler = new RefreshScheduler(run, 300);
    scheduler.schedule();
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(299);
    scheduler.schedule();
    expect(run).not.toHaveBeenCalled();
    await jest.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('never runs twice at once; asks made meanwhile give one more run', async () => {
    let release: () => void = () => undefined;
    const run = jest.fn(() => new Promise<void>(resolve => (release = resolve)));
    const scheduler = new RefreshScheduler(run, 100);
    void scheduler.flush();
    expect(scheduler.running).toBe(true);
    void scheduler.flush();
    scheduler.schedule();
    await jest.advanceTimersByTimeAsync(500);
    expect(run).toHaveBeenCalledTimes(1);
    release();
    await jest.advanceTimersByTimeAsync(100);
    expect(run).toHaveBeenCalledTimes(2);
    release();
    await jest.advanceTimersByTimeAsync(1000);
    expect(run).toHaveBeenCalledTimes(2);
  });

  it('stops after dispose', async () => {
    const run = jest.fn(async () => undefined);
    const scheduler = new RefreshScheduler(run, 100);
    scheduler.schedule();
    scheduler.dispose();
    await jest.advanceTimersByTimeAsync(500);
    expect(run).not.toHaveBeenCalled();
  });
});

describe('GovernanceIndicator', () => {
  beforeEach(() => jest.useFakeTimers());

  function make(request: any, session = new FakeSessionContext()) {
    const events = new Signal<object, any>({});
    const executed = new Signal<object, { notebook: unknown }>({});
    indicator = new GovernanceIndicator({
      sessionContext: session,
      request,
      notebook,
      events,
      executed,
      delay: 300
    });
    return { indicator, events, executed, session };
  }

  it('renders the governance of its kernel', async () => {
    const server = autoServer(() => gov());
    const { indicator } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    expect(server.mock).toHaveBeenCalledWith('kernels/k1');
    const node = indicator.node;
    expect(node.classList.contains('jp-guard-indicator')).toBe(true);
    expect(node.getAttribute('data-guard-label')).toBe('restricted');
    expect(node.textContent).toBe('restricted · 2 datasets · purpose: treatment-research');
    expect(node.title).toContain('patients (restricted): 2 allowed, 1 redacted');
    expect(node.querySelector('.jp-guard-indicator-label')!.className).toContain(
      'jp-guard-label-rank-3'
    );
  });

  it('says "none" and "No governed data read" for a fresh kernel', async () => {
    const server = autoServer(() => gov({ highest: null, datasets: [], purpose: null }));
    const { indicator } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    expect(indicator.node.getAttribute('data-guard-label')).toBe('none');
    expect(indicator.node.textContent).toBe('No governed data read');
  });

  it('shows the no-kernel state without asking the server', async () => {
    const server = autoServer(() => gov());
    const session = new FakeSessionContext();
    session.kernelId = null;
    const { indicator } = make(server.request, session);
    await jest.advanceTimersByTimeAsync(1000);
    expect(server.mock).not.toHaveBeenCalled();
    expect(indicator.node.textContent).toBe('Not governed (no kernel)');
    expect(indicator.node.getAttribute('data-guard-label')).toBe('none');
  });

  it('shows an unguarded kernel as not governed', async () => {
    const server = autoServer(() => gov({ guarded: false, highest: null, datasets: [] }));
    const { indicator } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    expect(indicator.node.textContent).toBe('Not governed');
    expect(indicator.node.title).toContain('This kernel is not governed');
  });

  it('shows the server error as unavailable', async () => {
    const server = autoServer(() => new Error('403: not your kernel'));
    const { indicator } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    expect(indicator.node.textContent).toBe('Governance unavailable');
    expect(indicator.node.title).toContain('403: not your kernel');
  });

  it('does not re-render an answer with the same version', async () => {
    let version = 1;
    const server = autoServer(() => gov({ version }));
    const { indicator, executed } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    const renders = jest.fn();
    indicator.changed.connect(renders);
    executed.emit({ notebook });
    await jest.advanceTimersByTimeAsync(300);
    expect(server.mock).toHaveBeenCalledTimes(2);
    expect(renders).not.toHaveBeenCalled();
    version = 2;
    executed.emit({ notebook });
    await jest.advanceTimersByTimeAsync(300);
    expect(renders).toHaveBeenCalledTimes(1);
  });

  it('coalesces audit events and executions into one request', async () => {
    const server = autoServer(() => gov());
    const { events, executed } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    server.mock.mockClear();
    events.emit({ schema_id: AUDIT_EVENT_SCHEMA_ID, kernel_id: 'k1', event_type: 'decision' });
    events.emit({ schema_id: AUDIT_EVENT_SCHEMA_ID, kernel_id: 'k1', event_type: 'cell_execution' });
    executed.emit({ notebook });
    executed.emit({ notebook });
    expect(server.mock).not.toHaveBeenCalled(); // debounced
    await jest.advanceTimersByTimeAsync(300);
    expect(server.mock).toHaveBeenCalledTimes(1);
  });

  it('ignores events of other kernels, other schemas and other notebooks', async () => {
    const server = autoServer(() => gov());
    const { events, executed } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    server.mock.mockClear();
    events.emit({ schema_id: AUDIT_EVENT_SCHEMA_ID, kernel_id: 'other' });
    events.emit({ schema_id: 'https://events.jupyter.org/other', kernel_id: 'k1' });
    executed.emit({ notebook: {} });
    await jest.advanceTimersByTimeAsync(1000);
    expect(server.mock).not.toHaveBeenCalled();
  });

  it('keeps at most one request in flight', async () => {
    const server = manualServer();
    const { events } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    expect(server.pending.length).toBe(1);
    events.emit({ schema_id: AUDIT_EVENT_SCHEMA_ID, kernel_id: 'k1' });
    await jest.advanceTimersByTimeAsync(1000);
    events.emit({ schema_id: AUDIT_EVENT_SCHEMA_ID, kernel_id: 'k1' });
    await jest.advanceTimersByTimeAsync(1000);
    expect(server.mock).toHaveBeenCalledTimes(1);
    server.pending[0].resolve(gov());
    await jest.advanceTimersByTimeAsync(300);
    expect(server.mock).toHaveBeenCalledTimes(2); // one follow-up for both events
  });

  it('follows a kernel change and drops the answer about the old kernel', async () => {
    const server = manualServer();
    const { indicator, session } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    session.kernelId = 'k2';
    session.kernelChanged.emit({});
    expect(indicator.node.textContent).toBe('Governance…');
    server.pending[0].resolve(gov({ kernel_id: 'k1' }));
    await jest.advanceTimersByTimeAsync(300);
    expect(indicator.governance).toBeNull(); // the k1 answer was dropped
    expect(server.pending[1].endPoint).toBe('kernels/k2');
    server.pending[1].resolve(gov({ kernel_id: 'k2', highest: null, datasets: [] }));
    await flushPromises();
    expect(indicator.governance?.kernel_id).toBe('k2');
    expect(indicator.node.textContent).toContain('No governed data read');
  });

  it('refreshes when a restarted kernel is idle again', async () => {
    const server = autoServer(() => gov());
    const { session } = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    server.mock.mockClear();
    session.statusChanged.emit('busy');
    session.statusChanged.emit('idle');
    await jest.advanceTimersByTimeAsync(300);
    expect(server.mock).not.toHaveBeenCalled(); // ordinary idle: executions cover it
    session.statusChanged.emit('restarting');
    session.statusChanged.emit('idle');
    await jest.advanceTimersByTimeAsync(300);
    expect(server.mock).toHaveBeenCalledTimes(1);
  });

  it('stops listening when disposed', async () => {
    const server = autoServer(() => gov());
    const made = make(server.request);
    await jest.advanceTimersByTimeAsync(300);
    server.mock.mockClear();
    made.indicator.dispose();
    made.events.emit({ schema_id: AUDIT_EVENT_SCHEMA_ID, kernel_id: 'k1' });
    made.executed.emit({ notebook });
    await jest.advanceTimersByTimeAsync(1000);
    expect(server.mock).not.toHaveBeenCalled();
  });
});

describe('GovernanceView (the dialog body)', () => {
  function ready(answer: (endPoint: string, init?: RequestInit) => unknown) {
    const server = autoServer(answer);
    indicator = new GovernanceIndicator({
      sessionContext: new FakeSessionContext(),
      request: server.request,
      delay: 0
    });
    return server;
  }

  it('lists datasets with badge and effects, and recent denials', async () => {
    ready(() => gov({ denials: [denial] }));
    await indicator!.refreshNow();
    const view = new GovernanceView({ indicator: indicator! });
    const node = view.node;
    expect(node.classList.contains('jp-guard-governance')).toBe(true);
    const patients = node.querySelector('.jp-guard-governance-dataset[data-dataset="patients"]')!;
    expect(patients.querySelector('.jp-guard-badge[data-guard-label="restricted"]')).not.toBeNull();
    expect(patients.textContent).toContain('2 allowed, 1 redacted');
    expect(node.querySelectorAll('.jp-guard-governance-dataset').length).toBe(2);
    expect(node.querySelector('.jp-guard-governance-denial')!.textContent).toContain(
      'registry (restricted)'
    );
    view.dispose();
  });

  it('posts the chosen purpose and re-renders with the answer', async () => {
    const server = ready((endPoint, init) => {
      if (endPoint === 'kernels/k1/purpose') {
        const { purpose } = JSON.parse(init!.body as string);
        return gov({ purpose, version: 2 });
      }
      return gov({ purpose: null });
    });
    await indicator!.refreshNow();
    const view = new GovernanceView({ indicator: indicator! });
    const select = view.node.querySelector<HTMLSelectElement>('select.jp-guard-purpose-select')!;
    expect(select.options[0].value).toBe('');
    expect(select.options[0].textContent).toBe('No purpose declared');
    expect(select.value).toBe('');
    select.value = 'quality-audit';
    select.dispatchEvent(new Event('change'));
    await flushPromises();
    expect(server.mock).toHaveBeenCalledWith(
      'kernels/k1/purpose',
      expect.objectContaining({ method: 'POST', body: JSON.stringify({ purpose: 'quality-audit' }) })
    );
    const after = view.node.querySelector<HTMLSelectElement>('select.jp-guard-purpose-select')!;
    expect(after.value).toBe('quality-audit');
    expect(indicator!.node.textContent).toContain('purpose: quality-audit');
    view.dispose();
  });

  it('posts null for "No purpose declared"', async () => {
    const server = ready((endPoint, init) =>
      endPoint.endsWith('/purpose')
        ? gov({ purpose: JSON.parse(init!.body as string).purpose, version: 5 })
        : gov()
    );
    await indicator!.refreshNow();
    const view = new GovernanceView({ indicator: indicator! });
    const select = view.node.querySelector<HTMLSelectElement>('select.jp-guard-purpose-select')!;
    expect(select.value).toBe('treatment-research');
    select.value = '';
    select.dispatchEvent(new Event('change'));
    await flushPromises();
    expect(server.mock).toHaveBeenLastCalledWith(
      'kernels/k1/purpose',
      expect.objectContaining({ body: JSON.stringify({ purpose: null }) })
    );
    view.dispose();
  });

  it("shows the server's refusal and keeps the old purpose", async () => {
    ready(endPoint =>
      endPoint.endsWith('/purpose')
        ? new Error("purpose 'marketing' is not allowed for 'patients'")
        : gov({ purposes: ['treatment-research', 'marketing'] })
    );
    await indicator!.refreshNow();
    const view = new GovernanceView({ indicator: indicator! });
    const select = view.node.querySelector<HTMLSelectElement>('select.jp-guard-purpose-select')!;
    select.value = 'marketing';
    select.dispatchEvent(new Event('change'));
    await flushPromises();
    const error = view.node.querySelector<HTMLElement>('.jp-guard-governance-error')!;
    expect(error.hidden).toBe(false);
    expect(error.textContent).toContain("purpose 'marketing' is not allowed for 'patients'");
    expect(
      view.node.querySelector<HTMLSelectElement>('select.jp-guard-purpose-select')!.value
    ).toBe('treatment-research');
    view.dispose();
  });

  it('says when the kernel is not governed', async () => {
    ready(() => gov({ guarded: false }));
    await indicator!.refreshNow();
    const view = new GovernanceView({ indicator: indicator! });
    expect(view.node.textContent).toContain('This kernel is not governed');
    expect(view.node.querySelector('select')).toBeNull();
    view.dispose();
  });

  it('opens as a dialog with the view as body', async () => {
    ready(() => gov());
    await openGovernanceDialog(indicator!);
    const options = (showDialog as jest.Mock).mock.calls[0][0];
    expect(options.body.node.classList.contains('jp-guard-governance')).toBe(true);
    expect(options.body.isDisposed).toBe(true); // cleaned up after closing
  });

  it('follows the indicator while open', async () => {
    let version = 1;
    ready(() => gov({ version, datasets: version > 1 ? [] : gov().datasets }));
    await indicator!.refreshNow();
    const view = new GovernanceView({ indicator: indicator! });
    const states: IndicatorState[] = [];
    indicator!.changed.connect((_, s) => states.push(s));
    version = 2;
    await indicator!.refreshNow();
    expect(states.length).toBe(1);
    expect(view.node.querySelector('.jp-guard-governance-dataset')).toBeNull();
    view.dispose();
  });
});
