/**
 * API types, plugin and command ids shared by the jupyter-guard frontend.
 *
 * This module is the lowest floor: it imports nothing from the rest of the
 * extension, so any module may import it without creating a cycle.
 */

/** Id of the main plugin; also the id of its settings (schema/plugin.json). */
export const PLUGIN_ID = 'jupyter-guard:plugin';

/** Id under which the status item is registered in the status bar. */
export const STATUS_ITEM_ID = 'jupyter-guard:status';

/** DOM id and class of the status bar item (stable, used by UI tests). */
export const STATUS_NODE_ID = 'jp-guard-status';

/** Command ids. */
export namespace CommandIDs {
  export const showStatus = 'jupyter-guard:show-status';
}

/** The calling user as the server sees it. */
export interface IGuardUser {
  name: string;
  groups: string[];
  roles: string[];
  steward: boolean;
}

/** The loaded data catalog. */
export interface IGuardCatalog {
  directory: string;
  /** Number of datasets in the catalog. */
  datasets: number;
  /** Sensitivity labels, least to most sensitive. */
  labels: string[];
  /** ISO 8601 time of the last successful load, or null if never loaded. */
  loaded_at: string | null;
  /** Why the last (re)load failed, or null. */
  error: string | null;
}

/** The audit log. */
export interface IGuardAudit {
  store: string;
  records: number;
}

/** Response of `GET /jupyter-guard/api/status`. */
export interface IGuardStatus {
  version: string;
  user: IGuardUser;
  catalog: IGuardCatalog;
  audit: IGuardAudit;
}
