import {
  errorReason,
  formatStatusText,
  formatStatusTitle,
  GuardStatusWidget,
  pluralize,
  unavailableView
} from '../../components/statusWidget';
import { IGuardStatus } from '../../tokens';

function makeStatus(overrides: Partial<IGuardStatus> = {}): IGuardStatus {
  return {
    version: '0.1.0',
    user: {
      name: 'alice',
      groups: ['research'],
      roles: ['researcher'],
      steward: false
    },
    catalog: {
      directory: '/srv/catalog',
      datasets: 4,
      labels: ['public', 'internal', 'confidential', 'restricted'],
      loaded_at: '2026-11-21T10:00:00Z',
      error: null
    },
    audit: { store: 'SQLiteAuditStore', records: 12 },
    ...overrides
  };
}

describe('pluralize', () => {
  it('uses the singular for one', () => {
    expect(pluralize(1, 'dataset')).toBe('1 dataset');
  });
  it('uses the plural otherwise', () => {
    expect(pluralize(0, 'dataset')).toBe('0 datasets');
    expect(pluralize(4, 'dataset')).toBe('4 datasets');
  });
});

describe('formatStatusText', () => {
  it('shows dataset count and roles', () => {
    expect(formatStatusText(makeStatus())).toBe(
      'Guard: 4 datasets · researcher'
    );
  });

  it('lists several roles and handles one dataset', () => {
    const status = makeStatus();
    status.user.roles = ['researcher', 'steward'];
    status.catalog.datasets = 1;
    expect(formatStatusText(status)).toBe(
      'Guard: 1 dataset · researcher, steward'
    );
  });

  it('says when the user has no role', () => {
    const status = makeStatus();
    status.user.roles = [];
    expect(formatStatusText(status)).toBe('Guard: 4 datasets · no role');
  });

  it('flags a catalog error', () => {
    const status = makeStatus();
    status.catalog.error = 'datasets.yaml:3: unknown label "secret"';
    expect(formatStatusText(status)).toBe('Guard: 4 datasets ⚠ · researcher');
  });
});

describe('formatStatusTitle', () => {
  it('contains version, catalog, labels, user and roles', () => {
    const title = formatStatusTitle(makeStatus());
    expect(title.split('\n')).toEqual([
      'jupyter_guard 0.1.0',
      'User: alice',
      'Roles: researcher',
      'Groups: research',
      'Steward: no',
      'Catalog: /srv/catalog (4 datasets)',
      'Labels: public, internal, confidential, restricted',
      'Loaded: 2026-11-21T10:00:00Z',
      'Audit: SQLiteAuditStore, 12 records'
    ]);
  });

  it('includes the catalog error and a never-loaded catalog', () => {
    const status = makeStatus();
    status.catalog.error = 'datasets.yaml:3: unknown label';
    status.catalog.loaded_at = null;
    status.user.steward = true;
    const title = formatStatusTitle(status);
    expect(title).toContain('Catalog error: datasets.yaml:3: unknown label');
    expect(title).toContain('Loaded: never');
    expect(title).toContain('Steward: yes');
  });
});

describe('unavailableView', () => {
  it('says unavailable and why', () => {
    const view = unavailableView(new Error('404 Not Found'));
    expect(view.ok).toBe(false);
    expect(view.text).toBe('Guard: unavailable');
    expect(view.title).toContain('404 Not Found');
  });

  it('copes with non-Error rejections', () => {
    expect(errorReason('boom')).toBe('boom');
    expect(errorReason(undefined)).toBe('unknown error');
  });
});

describe('GuardStatusWidget', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('has the stable id and class used by UI tests', () => {
    const widget = new GuardStatusWidget({
      fetchStatus: () => Promise.resolve(makeStatus()),
      refreshInterval: 0
    });
    expect(widget.node.id).toBe('jp-guard-status');
    expect(widget.hasClass('jp-guard-status')).toBe(true);
    widget.dispose();
  });

  it('renders the status after a refresh', async () => {
    const widget = new GuardStatusWidget({
      fetchStatus: () => Promise.resolve(makeStatus()),
      refreshInterval: 0
    });
    await widget.refresh();
    expect(widget.node.textContent).toBe('Guard: 4 datasets · researcher');
    expect(widget.node.title).toContain('Catalog: /srv/catalog');
    expect(widget.hasClass('jp-mod-unavailable')).toBe(false);
    expect(widget.status?.user.name).toBe('alice');
    widget.dispose();
  });

  it('shows unavailable when the request fails, and recovers', async () => {
    let fail = true;
    const widget = new GuardStatusWidget({
      fetchStatus: () =>
        fail
          ? Promise.reject(new Error('403 Forbidden'))
          : Promise.resolve(makeStatus()),
      refreshInterval: 0
    });
    await widget.refresh();
    expect(widget.node.textContent).toBe('Guard: unavailable');
    expect(widget.node.title).toContain('403 Forbidden');
    expect(widget.hasClass('jp-mod-unavailable')).toBe(true);
    expect(widget.status).toBeNull();

    fail = false;
    await widget.refresh();
    expect(widget.node.textContent).toBe('Guard: 4 datasets · researcher');
    expect(widget.hasClass('jp-mod-unavailable')).toBe(false);
    widget.dispose();
  });

  it('shows unavailable for a malformed response', async () => {
    const widget = new GuardStatusWidget({
      fetchStatus: () => Promise.resolve({} as IGuardStatus),
      refreshInterval: 0
    });
    await widget.refresh();
    expect(widget.node.textContent).toBe('Guard: unavailable');
    widget.dispose();
  });

  it('shares one request between concurrent refreshes', async () => {
    const fetchStatus = jest.fn(() => Promise.resolve(makeStatus()));
    const widget = new GuardStatusWidget({ fetchStatus, refreshInterval: 0 });
    await Promise.all([widget.refresh(), widget.refresh()]);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    widget.dispose();
  });

  it('refreshes every refreshInterval seconds until disposed', () => {
    jest.useFakeTimers();
    const fetchStatus = jest.fn(() => Promise.resolve(makeStatus()));
    const widget = new GuardStatusWidget({ fetchStatus, refreshInterval: 10 });
    expect(fetchStatus).toHaveBeenCalledTimes(0);
    jest.advanceTimersByTime(10_000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);

    widget.refreshInterval = 0;
    jest.advanceTimersByTime(60_000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);

    widget.refreshInterval = 5;
    widget.dispose();
    jest.advanceTimersByTime(60_000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
  });

  it('calls onClick when clicked', () => {
    const onClick = jest.fn();
    const widget = new GuardStatusWidget({
      fetchStatus: () => Promise.resolve(makeStatus()),
      refreshInterval: 0,
      onClick
    });
    widget.node.click();
    expect(onClick).toHaveBeenCalledTimes(1);
    widget.dispose();
  });
});
