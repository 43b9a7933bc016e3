// JupyterLab's apputils ships ES modules jest cannot load: mock the clipboard fallback.
jest.mock('@jupyterlab/apputils', () => ({
  Clipboard: { copyToSystem: jest.fn() }
}));

import { Clipboard } from '@jupyterlab/apputils';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  CatalogPanel,
  columnText,
  copyText,
  effectWord,
  labelOf,
  mayLines,
  needsAccess
} from '../../components/catalogPanel';
import { forgetLabels } from '../../components/labelBadge';
import { CATALOG_PANEL_ID, ICatalogDataset, ICatalogResponse } from '../../tokens';

const dana = { name: 'Dana Steward', email: 'dana@example.org' };

function dataset(overrides: Partial<ICatalogDataset> = {}): ICatalogDataset {
  return {
    name: 'patients',
    description: 'Patient registry extract',
    label: 'restricted',
    owner: 'Clinical Research Unit',
    steward: dana,
    locations: [
      { kind: 'path', location: 'data/patients.csv' },
      { kind: 'table', location: 'warehouse.clinical.patients' }
    ],
    columns: [
      { name: 'ssn', entity: 'US_SSN', rule: 'mask' },
      { name: 'notes', entity: 'FREE_TEXT', rule: null },
      { name: 'id', entity: null, rule: 'keep' }
    ],
    purposes: ['treatment-research'],
    may: { read: 'redact', export: 'justify', download: 'deny' },
    ...overrides
  };
}

function catalog(overrides: Partial<ICatalogResponse> = {}): ICatalogResponse {
  return {
    datasets: [
      dataset(),
      dataset({
        name: 'registry',
        description: 'National registry',
        owner: null,
        steward: null,
        columns: [],
        locations: [{ kind: 'table', location: 'registry.public.people' }],
        purposes: [],
        may: { read: 'deny', export: 'deny', download: 'deny' }
      })
    ],
    sources: [
      {
        name: 'warehouse',
        description: 'Clinical warehouse',
        label: 'confidential',
        owner: null,
        steward: dana,
        may: { credential: 'allow' }
      }
    ],
    labels: [
      { name: 'public', rank: 0, color: '', description: '' },
      { name: 'internal', rank: 1, color: '', description: '' },
      { name: 'confidential', rank: 2, color: '#d9822b', description: '' },
      { name: 'restricted', rank: 3, color: '', description: '' }
    ],
    purposes: ['treatment-research', 'quality-audit'],
    ...overrides
  };
}

function server(answer: (endPoint: string) => unknown = () => catalog()) {
  const request = jest.fn(async (endPoint: string) => {
    const value = answer(endPoint);
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

let panel: CatalogPanel | null = null;

afterEach(() => {
  panel?.dispose();
  panel = null;
  forgetLabels();
  jest.useRealTimers();
  jest.clearAllMocks();
});

function entry(name: string): HTMLElement {
  return panel!.node.querySelector<HTMLElement>(`.jp-guard-catalog-entry[data-dataset="${name}"]`)!;
}

describe('formatting', () => {
  it('says what each effect means for the user', () => {
    expect(['allow', 'redact', 'justify', 'deny'].map(effectWord)).toEqual([
      'raw',
      'redacted',
      'needs a justification',
      'denied'
    ]);
  });

  it('lists read, export and download', () => {
    expect(mayLines({ read: 'allow', export: 'redact', download: 'deny' }).map(l => l.text)).toEqual([
      'Read: raw',
      'Export: redacted',
      'Download: denied'
    ]);
  });

  it('shows a column with its PII class and rule', () => {
    expect(columnText({ name: 'ssn', entity: 'US_SSN', rule: 'mask' })).toBe('ssn: US_SSN → mask');
    expect(columnText({ name: 'notes', entity: 'FREE_TEXT', rule: null })).toBe('notes: FREE_TEXT');
    expect(columnText({ name: 'id', entity: null, rule: 'keep' })).toBe('id: no PII class → keep');
  });

  it('finds rank and colour of a label', () => {
    expect(labelOf(catalog().labels, 'confidential')).toEqual({ rank: 2, color: '#d9822b' });
    expect(labelOf(catalog().labels, 'unknown')).toEqual({ rank: 0, color: '' });
  });

  it('offers access requests only when reading is denied', () => {
    expect(needsAccess(dataset())).toBe(false);
    expect(needsAccess(dataset({ may: { read: 'deny', export: 'deny', download: 'deny' } }))).toBe(true);
  });
});

describe('CatalogPanel', () => {
  it('is the sidebar widget with its id and caption', () => {
    panel = new CatalogPanel({ request: server().request });
    expect(panel.id).toBe(CATALOG_PANEL_ID);
    expect(panel.title.caption).toBe('Data catalog');
    expect(panel.node.querySelector('input.jp-guard-catalog-search')).not.toBeNull();
  });

  it('loads the catalog when first shown', async () => {
    const s = server();
    panel = new CatalogPanel({ request: s.request });
    MessageLoop.sendMessage(panel, Widget.Msg.AfterShow);
    await flushPromises();
    expect(s.mock).toHaveBeenCalledWith('catalog');
    MessageLoop.sendMessage(panel, Widget.Msg.AfterShow);
    await flushPromises();
    expect(s.mock).toHaveBeenCalledTimes(1);
  });

  it('renders one entry per dataset with badge, description, steward and may', async () => {
    panel = new CatalogPanel({ request: server().request });
    await panel.refresh();
    expect(panel.node.querySelectorAll('.jp-guard-catalog-entry').length).toBe(2);
    const patients = entry('patients');
    expect(patients.querySelector('.jp-guard-catalog-name')!.textContent).toBe('patients');
    const badge = patients.querySelector('.jp-guard-badge[data-guard-label]')!;
    expect(badge.getAttribute('data-guard-label')).toBe('restricted');
    expect(badge.textContent).toBe('restricted');
    expect(patients.querySelector('.jp-guard-catalog-description')!.textContent).toBe(
      'Patient registry extract'
    );
    const steward = patients.querySelector('.jp-guard-catalog-steward')!;
    expect(steward.textContent).toBe(
      'Steward: Dana Steward <dana@example.org> · Owner: Clinical Research Unit'
    );
    expect(steward.querySelector('a')!.getAttribute('href')).toBe('mailto:dana@example.org');
    const may = patients.querySelector('.jp-guard-catalog-may')!;
    expect(Array.from(may.children).map(c => c.textContent)).toEqual([
      'Read: redacted',
      'Export: needs a justification',
      'Download: denied'
    ]);
    expect(may.querySelector('[data-action="download"]')!.getAttribute('data-effect')).toBe('deny');
  });

  it('lists columns with their PII classes and rules', async () => {
    panel = new CatalogPanel({ request: server().request });
    await panel.refresh();
    const columns = Array.from(entry('patients').querySelectorAll('.jp-guard-catalog-column')).map(
      c => c.textContent
    );
    expect(columns).toEqual(['ssn: US_SSN → mask', 'notes: FREE_TEXT', 'id: no PII class → keep']);
  });

  it('gives a read snippet and a steward placeholder when none is listed', async () => {
    panel = new CatalogPanel({ request: server().request });
    await panel.refresh();
    expect(entry('patients').querySelector('pre.jp-guard-snippet')!.textContent).toContain(
      'pd.read_csv("data/patients.csv")'
    );
    // registry's table has no catalog source called "registry": a placeholder.
    expect(entry('registry').querySelector('pre.jp-guard-snippet')!.textContent).toContain(
      'pd.read_sql('
    );
    expect(entry('registry').querySelector('.jp-guard-catalog-steward')!.textContent).toBe(
      'Steward: none listed'
    );
  });

  it('uses the catalog sources for table snippets', async () => {
    panel = new CatalogPanel({
      request: server(() =>
        catalog({ datasets: [dataset({ locations: [{ kind: 'table', location: 'warehouse.clinical.patients' }] })] })
      ).request
    });
    await panel.refresh();
    expect(entry('patients').querySelector('pre.jp-guard-snippet')!.textContent).toContain(
      'connect("warehouse")'
    );
  });

  it('lists sources with a connect snippet', async () => {
    panel = new CatalogPanel({ request: server().request });
    await panel.refresh();
    const source = panel.node.querySelector('.jp-guard-catalog-source[data-source="warehouse"]')!;
    expect(source.querySelector('.jp-guard-badge')!.getAttribute('data-guard-label')).toBe(
      'confidential'
    );
    expect(source.querySelector('pre.jp-guard-snippet')!.textContent).toContain(
      'con = connect("warehouse")'
    );
    expect(source.querySelector('.jp-guard-catalog-may')!.textContent).toBe('Connect: allowed');
  });

  it('offers Request access only on entries the user may not read', async () => {
    const onRequestAccess = jest.fn();
    panel = new CatalogPanel({ request: server().request, onRequestAccess });
    await panel.refresh();
    expect(entry('patients').querySelector('button.jp-guard-request-access')).toBeNull();
    const button = entry('registry').querySelector<HTMLButtonElement>('button.jp-guard-request-access')!;
    button.click();
    expect(onRequestAccess).toHaveBeenCalledWith('registry');
  });

  it('copies the snippet with the async clipboard', async () => {
    const writeText = jest.fn(async () => undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    panel = new CatalogPanel({ request: server().request });
    await panel.refresh();
    const copy = entry('patients').querySelector<HTMLButtonElement>('button.jp-guard-copy')!;
    copy.click();
    await flushPromises();
    expect(writeText).toHaveBeenCalledWith(
      entry('patients').querySelector('pre.jp-guard-snippet')!.textContent
    );
    expect(copy.textContent).toBe('Copied');
    expect(Clipboard.copyToSystem).not.toHaveBeenCalled();
  });

  it("falls back to JupyterLab's clipboard when the browser refuses", async () => {
    const writeText = jest.fn(async () => {
      throw new Error('NotAllowedError');
    });
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    await copyText('import pandas as pd\n');
    expect(Clipboard.copyToSystem).toHaveBeenCalledWith('import pandas as pd\n');
    Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true });
    await copyText('x');
    expect(Clipboard.copyToSystem).toHaveBeenLastCalledWith('x');
  });

  it('debounces the search and asks with the last text', async () => {
    jest.useFakeTimers();
    const s = server();
    panel = new CatalogPanel({ request: s.request, delay: 300 });
    const search = panel.node.querySelector<HTMLInputElement>('input.jp-guard-catalog-search')!;
    for (const text of ['p', 'pa', 'pat']) {
      search.value = text;
      search.dispatchEvent(new Event('input'));
      await jest.advanceTimersByTimeAsync(100);
    }
    expect(s.mock).not.toHaveBeenCalled();
    await jest.advanceTimersByTimeAsync(300);
    expect(s.mock).toHaveBeenCalledTimes(1);
    expect(s.mock).toHaveBeenCalledWith('catalog?q=pat');
  });

  it('previews under a purpose, offered from the catalog', async () => {
    const s = server();
    panel = new CatalogPanel({ request: s.request });
    await panel.refresh();
    const select = panel.node.querySelector<HTMLSelectElement>('select.jp-guard-catalog-purpose')!;
    expect(Array.from(select.options).map(o => o.value)).toEqual([
      '',
      'treatment-research',
      'quality-audit'
    ]);
    select.value = 'quality-audit';
    select.dispatchEvent(new Event('change'));
    await flushPromises();
    expect(s.mock).toHaveBeenLastCalledWith('catalog?purpose=quality-audit');
    expect(select.value).toBe('quality-audit'); // kept across the re-render
  });

  it('shows only the latest answer when searches overlap', async () => {
    const resolvers: ((v: unknown) => void)[] = [];
    const request = jest.fn(() => new Promise(resolve => resolvers.push(resolve)));
    panel = new CatalogPanel({ request: request as any });
    const first = panel.refresh();
    const second = panel.refresh();
    resolvers[1](catalog({ datasets: [dataset({ name: 'newest' })] }));
    await second;
    resolvers[0](catalog({ datasets: [dataset({ name: 'stale' })] }));
    await first;
    expect(panel.node.querySelector('[data-dataset="stale"]')).toBeNull();
    expect(panel.node.querySelector('[data-dataset="newest"]')).not.toBeNull();
  });

  it('says when nothing matches, and shows server errors', async () => {
    let fail = false;
    panel = new CatalogPanel({
      request: server(() =>
        fail ? new Error('503: catalog reloading') : catalog({ datasets: [], sources: [] })
      ).request
    });
    const search = panel.node.querySelector<HTMLInputElement>('input.jp-guard-catalog-search')!;
    search.value = 'zzz';
    await panel.refresh();
    const message = panel.node.querySelector('.jp-guard-catalog-message')!;
    expect(message.textContent).toContain('Nothing in the catalog matches “zzz”');
    fail = true;
    await panel.refresh();
    expect(message.textContent).toContain('503: catalog reloading');
    expect(message.classList.contains('jp-mod-error')).toBe(true);
  });
});
