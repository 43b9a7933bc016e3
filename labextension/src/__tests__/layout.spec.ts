/// <reference types="node" />
/**
 * The layout of labextension/src, checked on the real sources:
 *
 *   tokens.ts                  the lowest floor: imports nothing from the package
 *   handler.ts, guardSettings.ts  root helpers: import only root modules
 *   components/                widgets, their models and pure helpers: never plugins/, index.ts
 *                              or requestAPI (their plugin hands them a GuardRequest)
 *   plugins/                   one plugin per module (plugins/common.ts: what they share)
 *   index.ts                   the plugin list: imported by nothing
 *
 * and no import cycle anywhere (jupyter-scheduler's frontend has a nine-file
 * circle because its components import command ids from index.tsx).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const SRC = path.resolve(__dirname, '..');

/** Module id: path under src/ without `.ts`, with `/` (e.g. `components/auditViewer`). */
type Graph = Map<string, string[]>;

function listModules(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== '__tests__' && entry.name !== 'node_modules') {
        out.push(...listModules(full));
      }
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      out.push(full);
    }
  }
  return out;
}

function moduleId(file: string): string {
  return path.relative(SRC, file).replace(/\\/g, '/').replace(/\.ts$/, '');
}

/**
 * Every module's relative imports, resolved to module ids: static imports
 * (type-only ones too), `export ... from`, `import()` and `require()`.
 * Specifiers that resolve to no module of src/ are returned in `unresolved`.
 */
function importGraph(): { graph: Graph; unresolved: string[] } {
  const graph: Graph = new Map();
  const unresolved: string[] = [];
  for (const file of listModules(SRC)) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    const targets: string[] = [];
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) {
        continue; // a package
      }
      const base = path.resolve(path.dirname(file), fileName);
      const found = [`${base}.ts`, path.join(base, 'index.ts')].find(f => fs.existsSync(f));
      if (found) {
        targets.push(moduleId(found));
      } else {
        unresolved.push(`${moduleId(file)} -> ${fileName}`);
      }
    }
    graph.set(moduleId(file), targets);
  }
  return { graph, unresolved };
}

/** The import cycles of a graph: its strongly connected components with a loop (Tarjan). */
function findCycles(graph: Graph): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];

  const visit = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) {
        cycles.push(component.sort());
      }
    }
  };
  for (const node of graph.keys()) {
    if (!index.has(node)) {
      visit(node);
    }
  }
  return cycles;
}

/** `from -> to` for every import of the graph that `forbidden(from, to)` says is wrong. */
function violations(graph: Graph, forbidden: (from: string, to: string) => boolean): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      if (forbidden(from, to)) {
        out.push(`${from} -> ${to}`);
      }
    }
  }
  return out;
}

const isRoot = (id: string) => !id.includes('/');
const inDir = (dir: string) => (id: string) => id.startsWith(`${dir}/`);

describe('findCycles', () => {
  it('finds a circle, a self-import, and nothing in a layered graph', () => {
    const circle: Graph = new Map([
      ['index', ['a']],
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a', 'tokens']],
      ['self', ['self']],
      ['tokens', []]
    ]);
    expect(findCycles(circle)).toEqual([['a', 'b', 'c'], ['self']]);
    const layered: Graph = new Map([
      ['index', ['p', 'q']],
      ['p', ['w', 'tokens']],
      ['q', ['w']],
      ['w', ['tokens']],
      ['tokens', []]
    ]);
    expect(findCycles(layered)).toEqual([]);
  });
});

describe('the import graph of labextension/src', () => {
  const { graph, unresolved } = importGraph();

  it('reads the real sources (every plugin, every relative import resolved)', () => {
    expect(unresolved).toEqual([]);
    for (const id of [
      'index',
      'tokens',
      'handler',
      'plugins/status',
      'plugins/fileBadges',
      'plugins/notebookIndicator',
      'plugins/catalog',
      'plugins/denials',
      'plugins/exportReview',
      'plugins/audit',
      'components/auditViewer'
    ]) {
      expect(graph.has(id)).toBe(true);
    }
    expect(graph.get('index')).toHaveLength(7);
    const edges = Array.from(graph.values()).reduce((n, targets) => n + targets.length, 0);
    expect(edges).toBeGreaterThan(40);
  });

  it('has no import cycle', () => {
    expect(findCycles(graph)).toEqual([]);
  });

  it('imports index.ts from nowhere, and index.ts only imports plugins', () => {
    expect(violations(graph, (_, to) => to === 'index')).toEqual([]);
    expect(violations(graph, (from, to) => from === 'index' && !inDir('plugins')(to))).toEqual(
      []
    );
  });

  it('keeps components/ free of plugins/', () => {
    expect(
      violations(graph, (from, to) => inDir('components')(from) && inDir('plugins')(to))
    ).toEqual([]);
  });

  it('leaves requestAPI to the plugins (components are handed a GuardRequest)', () => {
    const calling = listModules(path.join(SRC, 'components'))
      .filter(file => /\brequestAPI\b/.test(fs.readFileSync(file, 'utf8')))
      .map(moduleId);
    expect(calling).toEqual([]);
  });

  it('keeps plugins independent of each other (plugins/common.ts is what they share)', () => {
    expect(
      violations(
        graph,
        (from, to) => inDir('plugins')(from) && inDir('plugins')(to) && to !== 'plugins/common'
      )
    ).toEqual([]);
    expect(
      violations(graph, (from, to) => from === 'plugins/common' && inDir('plugins')(to))
    ).toEqual([]);
  });

  it('keeps tokens.ts the lowest floor and the root helpers below the widgets', () => {
    expect(graph.get('tokens')).toEqual([]);
    expect(
      violations(graph, (from, to) => isRoot(from) && from !== 'index' && !isRoot(to))
    ).toEqual([]);
  });
});
