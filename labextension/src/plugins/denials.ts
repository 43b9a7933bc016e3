/**
 * Denials plugin: a notification when a cell's read is denied, and the
 * Request access command (from a denial, the catalog, the indicator or the palette).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import {
  DatasetNameBody,
  DenialWatcher,
  IRequestAccessArgs,
  requestAccess
} from '../components/denials';
import { CommandIDs } from '../tokens';
import { CATEGORY, makeRequest, watchSettings } from './common';

/** Notifications of denied reads, and the Request access command. */
const denialsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-guard:denials',
  description: 'Explains denied reads and lets you ask the steward for access.',
  autoStart: true,
  optional: [INotebookTracker, ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const request = makeRequest(app);

    app.commands.addCommand(CommandIDs.requestAccess, {
      label: args =>
        args?.dataset
          ? `Request Access to ${args.dataset as string}`
          : 'Request Access to a Dataset…',
      caption: 'Ask the data steward for access, with your reason',
      execute: async args => {
        let dataset = typeof args?.dataset === 'string' ? args.dataset : '';
        if (!dataset) {
          // From the palette: ask which dataset.
          const answer = await showDialog({
            title: 'Request access to which dataset?',
            body: new DatasetNameBody(),
            buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Next' })]
          });
          dataset = answer.button.accept ? (answer.value ?? '').trim() : '';
          if (!dataset) {
            return null;
          }
        }
        return requestAccess(request, {
          ...(args as unknown as Partial<IRequestAccessArgs>),
          dataset
        });
      }
    });
    palette?.addItem({ command: CommandIDs.requestAccess, category: CATEGORY });

    if (!tracker) {
      return;
    }
    const watcher = new DenialWatcher({ request, commands: app.commands });
    watchSettings(settingRegistry, settings => {
      watcher.enabled = settings.notifyOnDenial;
    });
    const watchPanel = (panel: NotebookPanel) => {
      const watch = watcher.watch(panel.sessionContext, () => panel.context.path);
      panel.disposed.connect(() => watch.dispose());
    };
    tracker.forEach(watchPanel);
    tracker.widgetAdded.connect((_, panel) => watchPanel(panel));
  }
};

export { denialsPlugin };
export default denialsPlugin;
