import { Signal } from '@lumino/signaling';

import {
  FileBadges,
  IFileBrowserLike,
  MAX_PATHS_PER_REQUEST,
  applyBadge,
  chunk,
  joinPath,
  mapItemNodes,
  pathsToFetch
} from '../../components/fileBadges';
import { forgetLabels } from '../../components/labelBadge';
import { IPathLabel, IPathLabelsResponse } from '../../tokens';

// ---------------------------------------------------------------------------
// A fake file browser: the DOM the real DirListing renders, and its model.
// ---------------------------------------------------------------------------

class FakeModel {
  path = '';
  driveName = '';
  names: string[] = [];
  refreshed = new Signal<this, void>(this);
  pathChanged = new Signal<this, unknown>(this);
  *items() {
    for (const name of this.names) {
      yield { name, path: joinPath(this.path, name) };
    }
  }
}

class FakeBrowser implements IFileBrowserLike {
  node = document.createElement('div');
  model = new FakeModel();
  content = document.createElement('ul');
  constructor() {
    this.content.className = 'jp-DirListing-content';
    this.node.appendChild(this.content);
    document.body.appendChild(this.node);
  }
  /** Render like DirListing: reuse nodes, rewrite the name text. */
  render(): void {
    const nodes = Array.from(this.content.children) as HTMLElement[];
    while (nodes.length > this.model.names.length) {
      nodes.pop()!.remove();
    }
    while (nodes.length < this.model.names.length) {
      const li = document.createElement('li');
      li.className = 'jp-DirListing-item';
      li.innerHTML =
        '<span class="jp-DirListing-itemName"><span class="jp-DirListing-itemIcon"></span>' +
        '<span class="jp-DirListing-itemText"></span></span><span class="jp-DirListing-itemModified"></span>';
      this.content.appendChild(li);
      nodes.push(li);
    }
    nodes.forEach((node, i) => {
      const text = node.querySelector('.jp-DirListing-itemText')!;
      text.innerHTML = '';
      const span = document.createElement('span');
      span.textContent = this.model.names[i];
      text.appendChild(span);
    });
  }
  /** cd: items change, then pathChanged and refreshed, as FileBrowserModel does. */
  cd(path: string, names: string[]): void {
    this.model.path = path;
    this.model.names = names;
    this.render();
    this.model.pathChanged.emit({ name: 'path', oldValue: '', newValue: path });
    this.model.refreshed.emit();
  }
  /** A polling refresh: same directory, maybe new items. */
  poll(names?: string[]): void {
    if (names) {
      this.model.names = names;
      this.render();
    }
    this.model.refreshed.emit();
  }
  badges(): { [name: string]: HTMLElement } {
    const out: { [name: string]: HTMLElement } = {};
    this.content.querySelectorAll('.jp-DirListing-item').forEach(node => {
      const badge = node.querySelector<HTMLElement>('.jp-guard-badge');
      if (badge) {
        out[node.querySelector('.jp-DirListing-itemText')!.textContent!] = badge;
      }
    });
    return out;
  }
  remove(): void {
    this.node.remove();
  }
}

function label(dataset: string, labelName: string, rank: number, contains = false): IPathLabel {
  return {
    dataset,
    label: labelName,
    rank,
    color: '',
    description: `${dataset} data`,
    steward: { name: 'Dana Steward', email: 'dana@example.org' },
    purposes: [],
    contains
  };
}

/** The catalog as the server would answer: a map of governed paths. */
const GOVERNED: { [path: string]: IPathLabel } = {
  'data/patients.csv': label('patients', 'restricted', 3),
  'data/visits': label('visits', 'confidential', 2),
  data: label('patients', 'restricted', 3, true)
};

function makeServer(governed = GOVERNED) {
  const calls: string[][] = [];
  const request = jest.fn(async (endPoint: string, init?: RequestInit) => {
    expect(endPoint).toBe('catalog/labels');
    expect(init?.method).toBe('POST');
    const { paths } = JSON.parse(init!.body as string) as { paths: string[] };
    calls.push(paths);
    const entries: IPathLabelsResponse['entries'] = {};
    for (const p of paths) {
      entries[p] = governed[p] ?? null;
    }
    return { entries, labels: [] } as IPathLabelsResponse;
  });
  return { request: request as any, calls, mock: request };
}

/** Let microtasks, MutationObserver callbacks and resolved requests run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise(resolve => setTimeout(resolve, 0));
  }
}

let browser: FakeBrowser;
let badges: FileBadges | null = null;

beforeEach(() => {
  browser = new FakeBrowser();
});

afterEach(() => {
  badges?.dispose();
  badges = null;
  browser.remove();
  forgetLabels();
  jest.restoreAllMocks();
});

// ---------------------------------------------------------------------------

describe('pure helpers', () => {
  it('joins directory and name', () => {
    expect(joinPath('', 'a.csv')).toBe('a.csv');
    expect(joinPath('data', 'a.csv')).toBe('data/a.csv');
    expect(joinPath('/data/sub/', 'a.csv')).toBe('data/sub/a.csv');
  });

  it('asks only for paths not cached, not stale and not in flight', () => {
    const cache = new Map([
      ['fresh', { entry: null, time: 1000 }],
      ['stale', { entry: null, time: 0 }]
    ]);
    const inFlight = new Set(['flying']);
    expect(
      pathsToFetch(['fresh', 'stale', 'flying', 'new', 'new'], cache, inFlight, 1500, 1000)
    ).toEqual(['stale', 'new']);
  });

  it('splits requests at the server limit', () => {
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunk([], 2)).toEqual([]);
  });

  it('maps item nodes to paths by their name text and the directory', () => {
    browser.model.path = 'data';
    browser.model.names = ['patients.csv', 'visits'];
    browser.render();
    const mapped = mapItemNodes(browser.content, 'data');
    expect(mapped.map(m => m.path)).toEqual(['data/patients.csv', 'data/visits']);
    expect(mapped[0].text.classList.contains('jp-DirListing-itemText')).toBe(true);
  });

  it('skips a node being renamed (no text node)', () => {
    browser.model.names = ['a.csv'];
    browser.render();
    browser.content.querySelector('.jp-DirListing-itemText')!.remove();
    expect(mapItemNodes(browser.content, '')).toEqual([]);
  });

  it('puts the badge right after the name and leaves a correct one alone', () => {
    browser.model.names = ['patients.csv'];
    browser.render();
    const [item] = mapItemNodes(browser.content, '');
    applyBadge(item, GOVERNED['data/patients.csv']);
    const badge = item.node.querySelector('.jp-guard-badge')!;
    expect(badge.previousElementSibling).toBe(item.text);
    applyBadge(item, GOVERNED['data/patients.csv']);
    expect(item.node.querySelector('.jp-guard-badge')).toBe(badge); // not replaced
    applyBadge(item, GOVERNED['data/visits']);
    expect(item.node.querySelector('.jp-guard-badge')!.textContent).toBe('confidential');
    expect(item.node.querySelectorAll('.jp-guard-badge').length).toBe(1);
    applyBadge(item, null);
    expect(item.node.querySelector('.jp-guard-badge')).toBeNull();
  });
});

describe('FileBadges', () => {
  it('asks once per directory change, with every item path', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    await settle();
    server.calls.length = 0;
    browser.cd('data', ['patients.csv', 'visits', 'notes.txt']);
    await settle();
    // pathChanged and refreshed arrive together: one request.
    expect(server.calls).toEqual([['data/patients.csv', 'data/visits', 'data/notes.txt']]);
  });

  it('shows badges with label, dataset, text and tooltip', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv', 'visits', 'notes.txt']);
    await settle();
    const shown = browser.badges();
    expect(Object.keys(shown).sort()).toEqual(['patients.csv', 'visits']);
    const badge = shown['patients.csv'];
    expect(badge.getAttribute('data-guard-label')).toBe('restricted');
    expect(badge.getAttribute('data-guard-dataset')).toBe('patients');
    expect(badge.textContent).toBe('restricted');
    expect(badge.title).toContain('Dataset: patients — patients data');
    expect(badge.previousElementSibling!.classList.contains('jp-DirListing-itemText')).toBe(true);
  });

  it('marks a folder that contains governed data', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('', ['data', 'README.md']);
    await settle();
    const badge = browser.badges()['data'];
    expect(badge.classList.contains('jp-mod-contains')).toBe(true);
    expect(badge.textContent).toBe('restricted inside');
    expect(badge.title).toContain('Contains governed data; most sensitive: patients (restricted)');
  });

  it('does not ask again for cached paths on a polling refresh', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv', 'visits']);
    await settle();
    server.calls.length = 0;
    browser.poll();
    await settle();
    expect(server.calls).toEqual([]);
    browser.poll(['patients.csv', 'visits', 'new.csv']);
    await settle();
    expect(server.calls).toEqual([['data/new.csv']]);
  });

  it('asks again once a cached answer is older than maxAge', async () => {
    const server = makeServer();
    let now = 0;
    badges = new FileBadges({
      browser,
      request: server.request,
      maxAge: 1000,
      now: () => now
    });
    browser.cd('data', ['patients.csv']);
    await settle();
    server.calls.length = 0;
    now = 500;
    browser.poll();
    await settle();
    expect(server.calls).toEqual([]);
    now = 2000;
    browser.poll();
    await settle();
    expect(server.calls).toEqual([['data/patients.csv']]);
  });

  it('forgets the cache on clearCache (a catalog reload)', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv']);
    await settle();
    badges.clearCache();
    server.calls.length = 0;
    await badges.update();
    expect(server.calls).toEqual([['data/patients.csv']]);
  });

  it('splits a huge directory into requests of at most 2000 paths', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    await settle();
    server.calls.length = 0;
    const names = Array.from({ length: MAX_PATHS_PER_REQUEST + 5 }, (_, i) => `f${i}.csv`);
    browser.model.path = 'big';
    browser.model.names = names;
    browser.model.refreshed.emit();
    await settle();
    expect(server.calls.map(c => c.length)).toEqual([MAX_PATHS_PER_REQUEST, 5]);
  });

  it('re-applies badges when the listing re-renders its nodes for other items', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv', 'visits', 'notes.txt']);
    await settle();
    // Sorting reuses the nodes: the first node now shows notes.txt.
    browser.model.names = ['notes.txt', 'visits', 'patients.csv'];
    browser.render();
    await settle();
    const items = browser.content.querySelectorAll('.jp-DirListing-item');
    expect(items[0].querySelector('.jp-guard-badge')).toBeNull();
    expect(items[2].querySelector('.jp-guard-badge')!.getAttribute('data-guard-dataset')).toBe(
      'patients'
    );
    expect(browser.content.querySelectorAll('.jp-guard-badge').length).toBe(2);
  });

  it('settles: applying badges does not trigger endless re-applying', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv']);
    await settle();
    const before = browser.badges()['patients.csv'];
    const spy = jest.spyOn(badges, 'apply');
    await settle();
    expect(spy).not.toHaveBeenCalled();
    expect(browser.badges()['patients.csv']).toBe(before);
  });

  it('removes badges when the setting is off and shows them again when on', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv', 'visits']);
    await settle();
    expect(Object.keys(browser.badges()).length).toBe(2);
    badges.enabled = false;
    expect(browser.badges()).toEqual({});
    server.calls.length = 0;
    browser.cd('', ['data']);
    await settle();
    expect(server.calls).toEqual([]); // off: no requests
    expect(browser.badges()).toEqual({});
    badges.enabled = true;
    await settle();
    expect(server.calls).toEqual([['data']]);
    expect(browser.badges()['data'].textContent).toBe('restricted inside');
  });

  it('starts disabled without asking the server', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request, enabled: false });
    browser.cd('data', ['patients.csv']);
    await settle();
    expect(server.mock).not.toHaveBeenCalled();
  });

  it('shows no badges and warns once when the server fails, then retries', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const request = jest.fn(async () => {
      throw new Error('500 Internal Server Error');
    });
    badges = new FileBadges({ browser, request: request as any });
    browser.cd('data', ['patients.csv']);
    await settle();
    browser.poll();
    await settle();
    expect(browser.badges()).toEqual({});
    expect(warn).toHaveBeenCalledTimes(1);
    // Failures are not cached: the next listing change asked again.
    expect(request.mock.calls.length).toBeGreaterThanOrEqual(2);
  });

  it('asks nothing for a non-default drive (its paths are not server paths)', async () => {
    const server = makeServer();
    browser.model.driveName = 'RTC';
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv']);
    await settle();
    expect(server.mock).not.toHaveBeenCalled();
  });

  it('removes its badges and stops listening when disposed', async () => {
    const server = makeServer();
    badges = new FileBadges({ browser, request: server.request });
    browser.cd('data', ['patients.csv']);
    await settle();
    badges.dispose();
    expect(browser.badges()).toEqual({});
    server.calls.length = 0;
    browser.cd('', ['data']);
    await settle();
    expect(server.calls).toEqual([]);
    expect(browser.badges()).toEqual({});
  });
});
