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

// ---------------------------------------------------------------------------
// Ids of the UI parts (stable: the UI tests and the docs use them)
// ---------------------------------------------------------------------------

/** Command ids. */
export namespace CommandIDs {
  export const showStatus = 'jupyter-guard:show-status';
  /** Open the catalog sidebar panel. */
  export const openCatalog = 'jupyter-guard:open-catalog';
  /** Open the steward's audit viewer (visible to stewards only). */
  export const openAuditViewer = 'jupyter-guard:open-audit-viewer';
  /** Show the governance of the current notebook (datasets read, purpose). */
  export const showNotebookGovernance = 'jupyter-guard:show-notebook-governance';
  /** Ask a steward for access to a dataset (args: {dataset, notebook?, kernel_id?}). */
  export const requestAccess = 'jupyter-guard:request-access';
}

/** Sidebar id of the catalog panel. */
export const CATALOG_PANEL_ID = 'jp-guard-catalog';

/** Main-area id of the audit viewer. */
export const AUDIT_VIEWER_ID = 'jp-guard-audit';

/** Schema id of the audit events the server emits through jupyter_events. */
export const AUDIT_EVENT_SCHEMA_ID =
  'https://events.jupyter.org/jupyter_guard/audit/v1';

/** An event of `serviceManager.events.stream`: `{schema_id, ...data}`. */
export type EventEmission = { readonly schema_id?: unknown; readonly [key: string]: unknown };

/** Commands whose export or download the export review intercepts. */
export const REVIEWED_COMMANDS = [
  'docmanager:download',
  'filebrowser:download',
  'notebook:export-to-format'
] as const;

// ---------------------------------------------------------------------------
// User preferences (schema/plugin.json; policy is server configuration)
// ---------------------------------------------------------------------------

export interface IGuardSettings {
  /** Seconds between status refreshes; 0 turns the automatic refresh off. */
  refreshInterval: number;
  /** Show label badges in the file browser. */
  showFileBadges: boolean;
  /** Show a notification when a cell's read is denied. */
  notifyOnDenial: boolean;
  /** Review what an export will contain before Download or Export. */
  reviewExports: boolean;
  /** Audit records fetched per page in the audit viewer. */
  auditPageSize: number;
}

export const DEFAULT_SETTINGS: IGuardSettings = {
  refreshInterval: 30,
  showFileBadges: true,
  notifyOnDenial: true,
  reviewExports: true,
  auditPageSize: 200
};

// ---------------------------------------------------------------------------
// REST API types (jupyter_guard/handlers.py is the other side)
// ---------------------------------------------------------------------------

/** What a policy decides: allow, redact, justify (allowed with a written reason) or deny. */
export type Effect = 'allow' | 'redact' | 'justify' | 'deny';

/** A person to ask: a steward or an owner. */
export interface IContact {
  name: string;
  email: string;
}

/** A sensitivity label of the catalog. */
export interface IGuardLabel {
  name: string;
  /** 0 is the least sensitive. */
  rank: number;
  /** CSS colour from the catalog, or '' (the UI then picks one by rank). */
  color: string;
  description: string;
}

/** One dataset of `GET catalog`. */
export interface ICatalogDataset {
  name: string;
  description: string;
  label: string;
  owner: string | null;
  steward: IContact | null;
  locations: { kind: 'path' | 'uri' | 'table'; location: string }[];
  columns: { name: string; entity: string | null; rule: string | null }[];
  purposes: string[];
  /** What this user may do with it, under the purpose asked about. */
  may: { read: Effect; export: Effect; download: Effect };
}

/** One data source of `GET catalog` (used as `connect("name")` in a kernel). */
export interface ICatalogSource {
  name: string;
  description: string;
  label: string;
  owner: string | null;
  steward: IContact | null;
  may: { credential: Effect };
}

/** `GET catalog?q=&purpose=`: what the user may discover. */
export interface ICatalogResponse {
  datasets: ICatalogDataset[];
  sources: ICatalogSource[];
  labels: IGuardLabel[];
  /** Purposes the catalog and policy know. */
  purposes: string[];
}

/** The governing dataset of one file-browser path (`POST catalog/labels`). */
export interface IPathLabel {
  dataset: string;
  label: string;
  rank: number;
  color: string;
  description: string;
  steward: IContact | null;
  purposes: string[];
  /**
   * false: the path itself is a location of the dataset. true: a folder that
   * holds governed data; the dataset is the most sensitive one inside it.
   */
  contains: boolean;
}

/** `POST catalog/labels` {paths} -> one entry per path asked (null: ungoverned). */
export interface IPathLabelsResponse {
  entries: { [path: string]: IPathLabel | null };
  labels: IGuardLabel[];
}

/** A dataset a kernel touched, for the notebook governance indicator. */
export interface IKernelDataset {
  dataset: string;
  label: string;
  rank: number;
  /** Number of decisions per effect, e.g. {allow: 2, deny: 1}. */
  effects: { [effect: string]: number };
  /** seq of the latest audit record about it. */
  last_seq: number | null;
}

/** A read the policy refused in a kernel (newest last). */
export interface IKernelDenial {
  msg_id: string | null;
  cell_id: string | null;
  dataset: string | null;
  label: string | null;
  target: string;
  effect: Effect;
  /** Who/what/why/who-to-ask, as the kernel's GuardDenied says it. */
  message: string;
  reasons: string[];
  /** Whom to ask, e.g. "Dana Steward <dana@example.org>". */
  ask: string | null;
  audit_seq: number | null;
  time: string;
}

/** `GET kernels/{kernel_id}` and `POST kernels/{kernel_id}/purpose`. */
export interface IKernelGovernance {
  kernel_id: string;
  notebook: string | null;
  /** The kernel loaded the guard (an IPython kernel); false: reads are not governed. */
  guarded: boolean;
  purpose: string | null;
  /** Purposes the catalog and policy know (for the purpose picker). */
  purposes: string[];
  /** Highest label among the data the kernel was permitted to read, or null. */
  highest: { label: string; rank: number; color: string } | null;
  datasets: IKernelDataset[];
  denials: IKernelDenial[];
  /** Grows with every change: equal versions mean nothing changed. */
  version: number;
}

/** `POST access-requests` body. */
export interface IAccessRequest {
  dataset: string;
  reason: string;
  action?: string;
  notebook?: string | null;
  kernel_id?: string | null;
}

/** `POST access-requests` reply (201). */
export interface IAccessRequestReply {
  audit_seq: number;
  dataset: string;
  steward: IContact | null;
  message: string;
}

/** One record of the audit log (`GET audit`). */
export interface IAuditRecord {
  seq: number;
  time: string;
  event_type: string;
  user: string | null;
  action: string | null;
  target: string | null;
  dataset: string | null;
  label: string | null;
  decision: string | null;
  reasons: string[];
  purpose: string | null;
  justification: string | null;
  kernel_id: string | null;
  session_id: string | null;
  notebook: string | null;
  cell_id: string | null;
  msg_id: string | null;
  /** Event-specific; cell_execution records hold the cell's code (secrets masked) here. */
  details: { [key: string]: unknown };
  prev_mac: string;
  mac: string;
}

/** Filters of `GET audit` and `GET audit/export` (all ANDed). */
export interface IAuditFilters {
  user?: string;
  dataset?: string;
  label?: string;
  decision?: string;
  notebook?: string;
  event_type?: string;
  action?: string;
  /** ISO 8601, inclusive. */
  since?: string;
  /** ISO 8601, exclusive. */
  until?: string;
}

/** `GET audit?...&after=&limit=&order=`: `next` is the cursor of the next page, or null. */
export interface IAuditPage {
  records: IAuditRecord[];
  next: number | null;
}

/** `GET audit/verify`. */
export interface IAuditVerify {
  ok: boolean;
  checked: number;
  first_bad_seq: number | null;
  problem: string | null;
  head_seq: number | null;
}

/** `POST export/preview` {path, format, action, justification?, purpose?}. */
export interface IExportPreview {
  path: string;
  action: 'export' | 'download';
  format: string | null;
  /** allow: served as is; redact: served redacted; deny: refused. */
  effect: Effect;
  permitted: boolean;
  needs_justification: boolean;
  /** The purpose it was decided under: the request's, or the notebook kernel's declared one. */
  purpose: string | null;
  message: string | null;
  label: string | null;
  datasets: { dataset: string; label: string }[];
  pii_in_outputs: { [entity: string]: number };
  blocked_cells: string[];
  decisions: {
    dataset: string | null;
    label: string | null;
    effect: Effect;
    permitted: boolean;
    reasons: string[];
    rule: string | null;
    ask: string | null;
  }[];
  /** What redaction would change, when effect is redact. */
  redaction: {
    outputs_scanned: number;
    outputs_removed: number;
    cells_blocked: number;
    entity_counts: { [entity: string]: number };
    secrets_masked: number;
  } | null;
}
