/**
 * Notebook indicator plugin: the governance indicator in every notebook
 * toolbar (data its kernel read, denials, purpose), and its dialog.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';

import {
  GovernanceIndicator,
  TOOLBAR_ITEM_NAME,
  openGovernanceDialog
} from '../components/notebookIndicator';
import { CommandIDs } from '../tokens';
import { CATEGORY, auditEvents, makeRequest } from './common';

/** The governance indicator in every notebook toolbar, and its dialog. */
const notebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-guard:notebook-governance',
  description:
    "A notebook toolbar item with the data its kernel read, and a purpose picker.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const request = makeRequest(app);
    const indicators = new WeakMap<NotebookPanel, GovernanceIndicator>();
    const onRequestAccess = (panel: NotebookPanel) => (dataset: string) => {
      void app.commands.execute(CommandIDs.requestAccess, {
        dataset,
        notebook: panel.context.path,
        kernel_id: panel.sessionContext.session?.kernel?.id ?? null
      });
    };

    const addIndicator = (panel: NotebookPanel) => {
      const indicator: GovernanceIndicator = new GovernanceIndicator({
        sessionContext: panel.sessionContext,
        request,
        notebook: panel.content,
        events: auditEvents(app),
        executed: NotebookActions.executed,
        onClick: () => {
          void openGovernanceDialog(indicator, {
            onRequestAccess: onRequestAccess(panel)
          });
        }
      });
      indicators.set(panel, indicator);
      // Next to the kernel name, where people look for what the kernel does.
      const names = Array.from(panel.toolbar.names());
      const at = names.indexOf('kernelName');
      panel.toolbar.insertItem(
        at >= 0 ? at : names.length,
        TOOLBAR_ITEM_NAME,
        indicator
      );
      panel.disposed.connect(() => indicator.dispose());
    };
    // Panels opened before this plugin activated, then every new one.
    tracker.forEach(addIndicator);
    tracker.widgetAdded.connect((_, panel) => addIndicator(panel));

    app.commands.addCommand(CommandIDs.showNotebookGovernance, {
      label: 'Show Notebook Data Governance',
      caption: 'The data this notebook’s kernel read, its denials and its purpose',
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        const indicator = panel ? indicators.get(panel) : undefined;
        if (panel && indicator) {
          await openGovernanceDialog(indicator, {
            onRequestAccess: onRequestAccess(panel)
          });
        }
      }
    });
    palette?.addItem({
      command: CommandIDs.showNotebookGovernance,
      category: CATEGORY
    });
  }
};

export { notebookPlugin };
export default notebookPlugin;
