/**
 * How the frontend talks to the server: the one request helper.
 *
 * `requestAPI` is the only code that sends a request to the jupyter-guard
 * REST API. Plugins bind it to the app's server settings (`GuardRequest`)
 * and hand that to the widgets, so the widgets never import the server
 * settings and jest can hand them a mock server instead.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** `requestAPI` bound to the server settings: endpoint under `jupyter-guard/api/`. */
export type GuardRequest = <T>(endPoint: string, init?: RequestInit) => Promise<T>;

/**
 * Call the jupyter-guard REST API.
 *
 * @param endPoint - path under `<baseUrl>/jupyter-guard/api/`, e.g. `status`
 * @param init - fetch options (method, body, ...)
 * @param settings - server connection settings; defaults to the page's
 * @returns the decoded JSON body
 * @throws ServerConnection.NetworkError when the server cannot be reached
 * @throws ServerConnection.ResponseError when the server answers with an error
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const requestUrl = URLExt.join(
    settings.baseUrl,
    'jupyter-guard',
    'api',
    endPoint
  );

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON (e.g. an HTML error page); keep the raw text.
    }
  }

  if (!response.ok) {
    throw new ServerConnection.ResponseError(
      response,
      responseMessage(response, data)
    );
  }
  return data as T;
}

/** The message of a jupyter_server JSON error body, or the HTTP status. */
function responseMessage(response: Response, data: unknown): string {
  if (data !== null && typeof data === 'object') {
    const message = (data as { message?: unknown }).message;
    if (typeof message === 'string' && message.length > 0) {
      return message;
    }
  }
  return `${response.status} ${response.statusText}`.trim();
}

/** Options of a JSON POST. */
export function postJSON(body: unknown): RequestInit {
  return {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }
  };
}

/**
 * The message to show for a failed request: the server's own message when it
 * sent one (requestAPI puts it in the error), else whatever the error says.
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error && error.message) {
    return error.message;
  }
  if (typeof error === 'string' && error) {
    return error;
  }
  return 'unknown error';
}

/** A query string from the non-empty values, e.g. `?q=pat&purpose=audit`. */
export function queryString(params: { [key: string]: string | null | undefined }): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value) {
      search.set(key, value);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
