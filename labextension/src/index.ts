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

import { requestAPI } from './handler';
import { GuardStatusWidget } from './statusWidget';
import { CommandIDs, IGuardStatus, PLUGIN_ID, STATUS_ITEM_ID } from './tokens';

/** Default seconds between status refreshes (mirrors schema/plugin.json). */
const DEFAULT_REFRESH_INTERVAL = 30;

/**
 * Shows the governance status in the status bar and offers a command that
 * shows the full status response.
 */
const plugin: JupyterFrontEndPlugin<void> = {
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
    const serverSettings = app.serviceManager.serverSettings;
    const fetchStatus = () =>
      requestAPI<IGuardStatus>('status', {}, serverSettings);

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
    palette?.addItem({
      command: CommandIDs.showStatus,
      category: 'Data Governance'
    });

    if (!statusBar) {
      return;
    }
    const widget = new GuardStatusWidget({
      fetchStatus,
      refreshInterval: DEFAULT_REFRESH_INTERVAL,
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

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings) => {
        const seconds = settings.get('refreshInterval').composite;
        widget.refreshInterval =
          typeof seconds === 'number' ? seconds : DEFAULT_REFRESH_INTERVAL;
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('jupyter-guard: failed to load settings', reason);
        });
    }
  }
};

export default plugin;
