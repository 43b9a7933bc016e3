/**
 * How the UI modules talk to the server.
 *
 * The modules take a `GuardRequest` instead of importing `requestAPI`, so
 * that jest can hand them a mock server (the real `handler.ts` pulls in
 * @jupyterlab/services, which jest cannot load as shipped) and so that
 * index.ts binds the server settings in one place.
 */

/** `requestAPI` bound to the server settings: endpoint under `jupyter-guard/api/`. */
export type GuardRequest = <T>(endPoint: string, init?: RequestInit) => Promise<T>;

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
