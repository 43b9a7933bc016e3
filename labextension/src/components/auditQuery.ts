/**
 * Pure helpers of the audit viewer: filters -> query strings and URLs, and
 * the formatting of times and sequence numbers. No DOM, no requests.
 */
import { URLExt } from '@jupyterlab/coreutils';

import { IAuditFilters } from '../tokens';

/** The filter fields, in the order they appear in query strings. */
export const FILTER_KEYS: readonly (keyof IAuditFilters)[] = [
  'user',
  'dataset',
  'label',
  'decision',
  'notebook',
  'event_type',
  'action',
  'since',
  'until'
];

/** Values of the decision filter (besides "any"). */
export const DECISIONS: readonly string[] = [
  'allow',
  'redact',
  'justify',
  'deny',
  'requested',
  'error'
];

/** Values of the event type filter (besides "any"). */
export const EVENT_TYPES: readonly string[] = [
  'decision',
  'cell_execution',
  'export',
  'download',
  'credential',
  'access_request',
  'purpose',
  'catalog_reload',
  'audit_export',
  'classification_proposal'
];

/** `GET audit` arguments: the filters plus the keyset cursor. */
export interface IAuditQueryParams extends IAuditFilters {
  /** Cursor: the `next` of the previous page. */
  after?: number | null;
  limit?: number;
  order?: 'asc' | 'desc';
}

/**
 * A `datetime-local` input value (local wall time, e.g. `2026-01-02T10:30`)
 * as an ISO 8601 UTC string, or undefined when empty or invalid.
 */
export function localInputToIso(value: string | null | undefined): string | undefined {
  const text = (value ?? '').trim();
  if (!text) {
    return undefined;
  }
  // A date-time without an offset is parsed as local time (ECMA-262 Date.parse).
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * An ISO time as the value of a `datetime-local` input (local wall time,
 * minutes precision), or '' when empty or invalid.
 */
export function isoToLocalInput(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return '';
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** The filters without empty values ("", whitespace, "any"), values trimmed. */
export function cleanFilters(filters: IAuditFilters): IAuditFilters {
  const out: IAuditFilters = {};
  for (const key of FILTER_KEYS) {
    const value = filters[key];
    if (typeof value !== 'string') {
      continue;
    }
    const text = value.trim();
    if (text && text !== 'any') {
      out[key] = text;
    }
  }
  return out;
}

/** The query string (without `?`) of `GET audit`; empty fields omitted. */
export function auditQueryString(params: IAuditQueryParams): string {
  const search = new URLSearchParams();
  const filters = cleanFilters(params);
  for (const key of FILTER_KEYS) {
    const value = filters[key];
    if (value !== undefined) {
      search.append(key, value);
    }
  }
  if (params.after !== undefined && params.after !== null) {
    search.append('after', String(params.after));
  }
  if (params.limit !== undefined) {
    search.append('limit', String(params.limit));
  }
  if (params.order) {
    search.append('order', params.order);
  }
  return search.toString();
}

/** The `_xsrf` cookie value, as JupyterLab's Drive.getDownloadUrl reads it. */
export function xsrfFromCookie(cookie: string | null | undefined): string | null {
  const match = (cookie ?? '').match('\\b_xsrf=([^;]*)\\b');
  return match ? match[1] : null;
}

/** `document.cookie`, or '' where it cannot be read (CSP sandbox). */
export function documentCookie(): string {
  try {
    return document.cookie;
  } catch {
    return '';
  }
}

/**
 * The URL of `GET audit/export?format=&<filters>` for a plain download link.
 *
 * Authentication: a plain `<a href download>` link is used rather than
 * `ServerConnection.makeRequest` + a Blob URL, because a Blob would hold the
 * whole export (1M records: hundreds of MB) in the page's memory before the
 * browser could save it, while a link streams it straight to disk. Same-origin
 * GETs carry JupyterLab's login cookie (the server sets it when the page is
 * opened with `?token=`, and JupyterHub always uses one), which authenticates
 * the request; the token from PageConfig is never put in a URL. jupyter_server
 * checks XSRF on cookie-authenticated GETs of some handlers, so the `_xsrf`
 * cookie value is appended exactly as JupyterLab's own download links do
 * (`Drive.getDownloadUrl`).
 */
export function auditExportUrl(
  baseUrl: string,
  format: 'csv' | 'jsonl',
  filters: IAuditFilters,
  cookie: string = ''
): string {
  const search = new URLSearchParams();
  search.append('format', format);
  const clean = cleanFilters(filters);
  for (const key of FILTER_KEYS) {
    const value = clean[key];
    if (value !== undefined) {
      search.append(key, value);
    }
  }
  const xsrf = xsrfFromCookie(cookie);
  if (xsrf) {
    search.append('_xsrf', xsrf);
  }
  const path = URLExt.join(baseUrl, 'jupyter-guard', 'api', 'audit', 'export');
  return `${path}?${search.toString()}`;
}

/** The time window around an ISO time: [time - hours, time + hours], as ISO. */
export function timeWindow(
  iso: string,
  hours = 12
): { since: string; until: string } | null {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) {
    return null;
  }
  const span = hours * 3600 * 1000;
  return {
    since: new Date(t - span).toISOString(),
    until: new Date(t + span).toISOString()
  };
}

const numberFormats = new Map<string, Intl.NumberFormat>();
const timeFormats = new Map<string, Intl.DateTimeFormat>();

/** A count or seq with the locale's thousands separators, e.g. 1,000,000. */
export function formatCount(n: number, locale?: string): string {
  const key = locale ?? '';
  let format = numberFormats.get(key);
  if (!format) {
    format = new Intl.NumberFormat(locale);
    numberFormats.set(key, format);
  }
  return format.format(n);
}

/** An ISO time in the user's locale and time zone (the raw text if unparsable). */
export function formatTime(iso: string | null | undefined, locale?: string): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const key = locale ?? '';
  let format = timeFormats.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat(locale, {
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit'
    });
    timeFormats.set(key, format);
  }
  return format.format(date);
}
