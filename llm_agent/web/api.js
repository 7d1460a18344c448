// The page's calls to the API of llm-agent serve: JSON requests, the chat's event stream,
// uploads with progress, downloads. The token lives in this tab's sessionStorage and
// travels only in the Authorization header, never in a URL.

const TOKEN_KEY = 'llm-agent:token';
const GONE = 'cannot reach llm-agent serve: is it still running?';

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0: no answer at all
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    message = (await response.json()).message || message;
  } catch {
    // not JSON: the status line says what there is to say
  }
  return new APIError(response.status, message);
}

async function request(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new APIError(0, GONE);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

// One API call; its JSON answer (null when it has none).
export async function call(method, path, body) {
  const response = await request(method, path, body);
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : null;
}

export function sessionPath(id, rest = '') {
  return `/api/chat/${encodeURIComponent(id)}${rest}`;
}

// POST /api/chat: onEvent(name, data) for each server-sent event, as it arrives.
export async function chat(message, sessionId, onEvent) {
  const response = await request('POST', '/api/chat', { message, session_id: sessionId });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let end;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let name = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      onEvent(name, data ? JSON.parse(data) : {});
    }
  }
}

// PUT the file into the session's kernel; onProgress(sent, total) as it goes. XHR, not
// fetch: only XHR reports an upload's progress.
export function upload(sessionId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', sessionPath(sessionId, `/files/${encodeURIComponent(file.name)}`));
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // an answer that is not JSON: keep the status
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new APIError(xhr.status, body.message || `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new APIError(0, `the upload of ${file.name} was cut off: ${GONE}`));
    xhr.send(file);
  });
}

// GET a file with the token in the header and have the browser save it as `name`.
export async function download(path, name) {
  const blob = await (await request('GET', path)).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  // the browser reads the blob after this task: release it once that has surely happened
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
