// ESM JupyterLab packages jest does not transform: named stand-ins for their tokens.
jest.mock('@jupyterlab/application', () => ({
  ILabShell: { name: 'ILabShell' },
  ILayoutRestorer: { name: 'ILayoutRestorer' }
}));
jest.mock('@jupyterlab/apputils', () => ({
  ICommandPalette: { name: 'ICommandPalette' },
  Dialog: {},
  Notification: {}
}));
jest.mock('@jupyterlab/ui-components', () => ({
  LabIcon: class {},
  listIcon: { name: 'list' }
}));
jest.mock('@jupyterlab/docmanager', () => ({ IDocumentManager: { name: 'IDocumentManager' } }));
jest.mock('@jupyterlab/filebrowser', () => ({ IDefaultFileBrowser: { name: 'IDefaultFileBrowser' } }));
jest.mock('@jupyterlab/notebook', () => ({
  INotebookTracker: { name: 'INotebookTracker' },
  NotebookActions: {}
}));
jest.mock('@jupyterlab/settingregistry', () => ({ ISettingRegistry: { name: 'ISettingRegistry' } }));
jest.mock('@jupyterlab/statusbar', () => ({ IStatusBar: { name: 'IStatusBar' } }));

import plugins from '../../index';

const names = (tokens: unknown[] | undefined) =>
  (tokens ?? []).map(token => (token as { name: string }).name);

describe('index.ts', () => {
  it('lists the seven plugins, ids and order as shipped', () => {
    expect(plugins.map(plugin => plugin.id)).toEqual([
      'jupyter-guard:plugin',
      'jupyter-guard:file-badges',
      'jupyter-guard:notebook-governance',
      'jupyter-guard:catalog',
      'jupyter-guard:denials',
      'jupyter-guard:audit-viewer',
      'jupyter-guard:export-review'
    ]);
    expect(plugins.every(plugin => plugin.autoStart === true)).toBe(true);
    expect(plugins.every(plugin => typeof plugin.activate === 'function')).toBe(true);
  });

  it('asks for the services each plugin needs, in activate order', () => {
    const wants: { [id: string]: { requires: string[]; optional: string[] } } = {};
    for (const plugin of plugins) {
      wants[plugin.id] = { requires: names(plugin.requires), optional: names(plugin.optional) };
    }
    expect(wants).toEqual({
      'jupyter-guard:plugin': {
        requires: [],
        optional: ['IStatusBar', 'ISettingRegistry', 'ICommandPalette']
      },
      'jupyter-guard:file-badges': {
        requires: [],
        optional: ['IDefaultFileBrowser', 'ISettingRegistry']
      },
      'jupyter-guard:notebook-governance': {
        requires: ['INotebookTracker'],
        optional: ['ICommandPalette']
      },
      'jupyter-guard:catalog': {
        requires: [],
        optional: ['ICommandPalette', 'ILabShell', 'ILayoutRestorer']
      },
      'jupyter-guard:denials': {
        requires: [],
        optional: ['INotebookTracker', 'ISettingRegistry', 'ICommandPalette']
      },
      'jupyter-guard:audit-viewer': {
        requires: [],
        optional: ['ICommandPalette', 'ISettingRegistry']
      },
      'jupyter-guard:export-review': {
        requires: [],
        optional: ['IDocumentManager', 'IDefaultFileBrowser', 'INotebookTracker', 'ISettingRegistry']
      }
    });
  });
});
