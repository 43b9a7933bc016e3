/**
 * Export review plugin: intercepts docmanager:download, filebrowser:download
 * and notebook:export-to-format for notebooks (see components/exportReview.ts).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { documentCookie } from '../components/auditQuery';
import {
  ExportReviewer,
  IReviewEnv,
  resolveReview,
  wrapExecute
} from '../components/exportReview';
import { watchGuardSettings } from '../guardSettings';
import { postJSON, requestAPI } from '../handler';
import { IExportPreview } from '../tokens';

/** Plugin id. */
export const EXPORT_REVIEW_PLUGIN_ID = 'jupyter-guard:export-review';

export function activateExportReview(
  app: JupyterFrontEnd,
  docManager: IDocumentManager | null,
  browser: IDefaultFileBrowser | null,
  tracker: INotebookTracker | null,
  settingRegistry: ISettingRegistry | null
): void {
  const settings = watchGuardSettings(settingRegistry);
  const serverSettings = app.serviceManager.serverSettings;
  const contents = app.serviceManager.contents;

  const env: IReviewEnv = {
    currentDocumentPath: () => {
      const widget = app.shell.currentWidget;
      if (!widget || !docManager) {
        return null;
      }
      return docManager.contextForWidget(widget)?.path ?? null;
    },
    selectedItems: () => (browser ? Array.from(browser.selectedItems()) : []),
    // As notebook-extension's getCurrent: the tracker's current notebook.
    currentNotebookPath: () => tracker?.currentWidget?.context.path ?? null
  };

  const reviewer = new ExportReviewer({
    preview: body =>
      requestAPI<IExportPreview>('export/preview', postJSON(body), serverSettings),
    localPath: path => contents.localPath(path),
    baseUrl: () => serverSettings.baseUrl,
    cookie: documentCookie,
    downloadPlain: async path => {
      if (browser) {
        await browser.model.download(path);
      }
    },
    saveBeforeExport: async path => {
      // notebook:export-to-format saves a dirty notebook before exporting;
      // do it before the preview so the review sees what will be exported.
      const current = tracker?.currentWidget;
      if (current && current.context.path === path) {
        const { context } = current;
        if (context.model.dirty && !context.model.readOnly) {
          await context.save();
        }
      }
    }
  });

  wrapExecute(app.commands, (id, args, runOriginal) => {
    if (!settings.current.reviewExports) {
      return null;
    }
    const resolved = resolveReview(id, args, env);
    if (!resolved) {
      return null;
    }
    return reviewer.run(resolved, runOriginal);
  });
}

const exportReviewPlugin: JupyterFrontEndPlugin<void> = {
  id: EXPORT_REVIEW_PLUGIN_ID,
  description:
    'Review what a notebook download or export will contain (sensitivity, redaction, justification) before it happens.',
  autoStart: true,
  optional: [IDocumentManager, IDefaultFileBrowser, INotebookTracker, ISettingRegistry],
  activate: activateExportReview
};

export { exportReviewPlugin };
export default exportReviewPlugin;
