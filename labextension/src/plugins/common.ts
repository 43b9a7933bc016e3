/**
 * What the plugins share: the palette category, the request helper bound to
 * the app, the user's settings and the server's audit events. Only plugins
 * import this module; widgets get what they need from their plugin.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal } from '@lumino/signaling';

import { watchGuardSettings } from '../guardSettings';
import { GuardRequest, requestAPI } from '../handler';
import { EventEmission, IGuardSettings } from '../tokens';

/** Command palette category of the jupyter_guard commands. */
export const CATEGORY = 'Data Governance';

/** requestAPI bound to the app's server settings. */
export function makeRequest(app: JupyterFrontEnd): GuardRequest {
  const settings = app.serviceManager.serverSettings;
  return <T>(endPoint: string, init: RequestInit = {}) =>
    requestAPI<T>(endPoint, init, settings);
}

/**
 * Call `apply` with the user's settings now (DEFAULT_SETTINGS until they load,
 * or if they cannot) and again whenever they change.
 */
export function watchSettings(
  registry: ISettingRegistry | null,
  apply: (settings: IGuardSettings) => void
): void {
  apply(watchGuardSettings(registry, apply).current);
}

/** The server's audit events (`{schema_id, ...IAuditRecord}`), or null if unavailable. */
export function auditEvents(app: JupyterFrontEnd): ISignal<any, EventEmission> | null {
  return app.serviceManager.events?.stream ?? null;
}
