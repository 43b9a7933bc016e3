/**
 * Status bar plugin: the governance status (catalog, roles, audit store) in
 * the status bar, and a command that shows the full status response.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { GuardStatusWidget } from '../components/statusWidget';
import {
  CommandIDs,
  DEFAULT_SETTINGS,
  IGuardStatus,
  PLUGIN_ID,
  STATUS_ITEM_ID
} from '../tokens';
import { CATEGORY, makeRequest, watchSettings } from './common';

/**
 * Shows the governance status in the status bar and offers a command that
 * shows the full status response.
 */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'jupyter_guard status (catalog, roles, audit store) in the status bar.',
  autoStart: true,
  optional: [IStatusBar, ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const request = makeRequest(app);
    const fetchStatus = () => request<IGuardStatus>('status');

    app.commands.addCommand(CommandIDs.showStatus, {
      label: 'Show Data Governance (jupyter_guard) Status',
      caption: 'Show the jupyter_guard status of this server',
      execute: async () => {
        let status: IGuardStatus;
        try {
          status = await fetchStatus();
        } catch (error) {
          await showErrorMessage(
            'jupyter_guard status unavailable',
            error as Error
          );
          return;
        }
        const body = new Widget({ node: document.createElement('pre') });
        body.addClass('jp-guard-status-json');
        body.node.textContent = JSON.stringify(status, null, 2);
        await showDialog({
          title: 'jupyter_guard status',
          body,
          buttons: [Dialog.okButton()]
        });
      }
    });
    palette?.addItem({ command: CommandIDs.showStatus, category: CATEGORY });

    if (!statusBar) {
      return;
    }
    const widget = new GuardStatusWidget({
      fetchStatus,
      refreshInterval: DEFAULT_SETTINGS.refreshInterval,
      onClick: () => {
        void app.commands.execute(CommandIDs.showStatus);
      }
    });
    statusBar.registerStatusItem(STATUS_ITEM_ID, {
      item: widget,
      align: 'left',
      rank: 100
    });
    void widget.refresh();
    watchSettings(settingRegistry, settings => {
      widget.refreshInterval = settings.refreshInterval;
    });
  }
};

export { statusPlugin };
export default statusPlugin;
