// ESM JupyterLab packages jest does not transform: small stand-ins.
jest.mock('@jupyterlab/application', () => ({}));
jest.mock('@jupyterlab/docmanager', () => ({ IDocumentManager: { name: 'IDocumentManager' } }));
jest.mock('@jupyterlab/filebrowser', () => ({ IDefaultFileBrowser: { name: 'IDefaultFileBrowser' } }));
jest.mock('@jupyterlab/notebook', () => ({ INotebookTracker: { name: 'INotebookTracker' } }));
jest.mock('@jupyterlab/settingregistry', () => ({ ISettingRegistry: { name: 'ISettingRegistry' } }));
jest.mock('@jupyterlab/apputils', () => {
  const button = (accept: boolean) => (options: any = {}) => ({ label: options.label, accept });
  return {
    Dialog: { okButton: button(true), cancelButton: button(false), warnButton: button(true) },
    showDialog: jest.fn(async () => ({ button: { accept: true }, value: '' }))
  };
});
// The real helpers (postJSON, errorMessage, ...), a mock server.
jest.mock('../../handler', () => ({ ...jest.requireActual('../../handler'), requestAPI: jest.fn() }));

import { showDialog } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';

import { requestAPI } from '../../handler';
import exportReviewPlugin, { activateExportReview } from '../../plugins/exportReview';

const request = requestAPI as jest.Mock;
const dialog = showDialog as jest.Mock;
const flush = () => new Promise(resolve => setTimeout(resolve, 0));

function preview(path: string) {
  return {
    path,
    action: 'download',
    format: 'ipynb',
    effect: 'allow',
    permitted: true,
    needs_justification: false,
    message: null,
    label: null,
    datasets: [],
    pii_in_outputs: {},
    blocked_cells: [],
    decisions: [],
    redaction: null
  };
}

function setup(options: { reviewExports?: boolean; docPath?: string | null } = {}) {
  const commands = new CommandRegistry();
  const ran: { id: string; args: unknown }[] = [];
  for (const id of ['docmanager:download', 'filebrowser:download', 'notebook:export-to-format']) {
    commands.addCommand(id, { execute: args => void ran.push({ id, args }) });
  }
  const widget = {};
  const app = {
    commands,
    shell: { currentWidget: widget },
    serviceManager: {
      serverSettings: { baseUrl: 'http://h/' },
      contents: { localPath: (p: string) => p.replace(/^RTC:/, '') }
    }
  };
  const docManager = {
    contextForWidget: jest.fn(() =>
      options.docPath === null ? undefined : { path: options.docPath ?? 'work/a.ipynb' }
    )
  };
  const browser = {
    selectedItems: jest.fn(function* () {
      yield { path: 'work/b.ipynb', type: 'notebook' };
      yield { path: 'work/data.csv', type: 'file' };
    }),
    model: { download: jest.fn(async () => undefined) }
  };
  const context = { path: 'RTC:work/c.ipynb', model: { dirty: true, readOnly: false }, save: jest.fn(async () => undefined) };
  const tracker = { currentWidget: { context } };
  const values: Record<string, unknown> = { reviewExports: options.reviewExports ?? true };
  const settings: any = { get: (key: string) => ({ composite: values[key] }) };
  settings.changed = new Signal<any, void>(settings);
  const registry = { load: jest.fn(async () => settings) };
  activateExportReview(app as any, docManager as any, browser as any, tracker as any, registry as any);
  return { commands, ran, browser, context, docManager };
}

describe('export review plugin', () => {
  beforeEach(() => {
    request.mockReset();
    request.mockImplementation(async (_endpoint: string, init: RequestInit) =>
      preview(JSON.parse(init.body as string).path)
    );
    dialog.mockClear();
  });

  it('has the plugin id and optional tokens', () => {
    expect(exportReviewPlugin.id).toBe('jupyter-guard:export-review');
    expect(exportReviewPlugin.requires ?? []).toHaveLength(0);
    expect((exportReviewPlugin.optional ?? []).map((t: any) => t.name)).toEqual([
      'IDocumentManager',
      'IDefaultFileBrowser',
      'INotebookTracker',
      'ISettingRegistry'
    ]);
  });

  it('reviews a notebook download, then runs the original command', async () => {
    const { commands, ran } = setup();
    await flush(); // settings loaded
    await commands.execute('docmanager:download');
    expect(request).toHaveBeenCalledWith(
      'export/preview',
      {
        method: 'POST',
        body: JSON.stringify({ path: 'work/a.ipynb', format: 'ipynb', action: 'download' }),
        headers: { 'Content-Type': 'application/json' }
      },
      { baseUrl: 'http://h/' }
    );
    expect(dialog).toHaveBeenCalledTimes(1);
    expect(ran).toEqual([{ id: 'docmanager:download', args: {} }]);
  });

  it('passes other files and the reviewExports=false setting through without a dialog', async () => {
    const csv = setup({ docPath: 'data.csv' });
    await flush();
    await csv.commands.execute('docmanager:download');
    expect(csv.ran).toHaveLength(1);

    const off = setup({ reviewExports: false });
    await flush();
    await off.commands.execute('docmanager:download');
    await off.commands.execute('notebook:export-to-format', { format: 'html' });
    expect(off.ran.map(r => r.id)).toEqual(['docmanager:download', 'notebook:export-to-format']);
    expect(request).not.toHaveBeenCalled();
    expect(dialog).not.toHaveBeenCalled();
  });

  it('reviews the selected notebooks of the file browser', async () => {
    const { commands, ran } = setup();
    await flush();
    await commands.execute('filebrowser:download');
    expect(request).toHaveBeenCalledTimes(1);
    expect(JSON.parse(request.mock.calls[0][1].body).path).toBe('work/b.ipynb');
    expect(ran.map(r => r.id)).toEqual(['filebrowser:download']);
  });

  it('saves a dirty notebook, previews the export in its format, and runs the export', async () => {
    const { commands, ran, context } = setup();
    await flush();
    await commands.execute('notebook:export-to-format', { format: 'html' });
    expect(context.save).toHaveBeenCalled();
    expect(JSON.parse(request.mock.calls[0][1].body)).toEqual({
      path: 'work/c.ipynb',
      format: 'html',
      action: 'export'
    });
    expect(ran).toEqual([{ id: 'notebook:export-to-format', args: { format: 'html' } }]);
  });

  it('stops when the user cancels', async () => {
    dialog.mockResolvedValueOnce({ button: { accept: false }, value: '' });
    const { commands, ran } = setup();
    await flush();
    await commands.execute('docmanager:download');
    expect(ran).toHaveLength(0);
  });
});
