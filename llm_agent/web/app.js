// The chat page: the token, this browser's conversations, uploads and files, the
// composer, and what the server says is wrong. Each conversation is a session of
// llm-agent serve with a kernel of its own, created on its first upload or message.

import * as api from './api.js';
import { el } from './render.js';
import { ConversationView } from './view.js';

const $ = (id) => document.getElementById(id);
const STORE = 'llm-agent:conversations'; // this browser's conversations: [{ id, title }]
const CURRENT = 'llm-agent:current';

const state = {
  conversations: new Map(), // id -> { id, title, created, view, loaded }
  current: null,
  answering: null, // the conversation whose answer is streaming
  running: null, // the call id of the code running now
  maxUpload: Infinity,
};

// ---- problems, status, token ----

function problem(message) {
  const box = $('problems');
  if (!message) return box.replaceChildren();
  if ([...box.children].some((p) => p.firstChild.textContent === message)) return;
  const again = el('button', { type: 'button', class: 'ghost', text: 'Check again' });
  again.addEventListener('click', () => checkStatus());
  box.append(el('p', {}, el('span', { text: message }), ' ', again));
}

function failed(error) {
  if (error.status === 401) askToken(true);
  else problem(error.message);
}

function askToken(refused) {
  const hadToken = Boolean(api.token());
  api.setToken('');
  $('token-problem').textContent =
    refused && hadToken
      ? 'The server refused this token. Enter the token llm-agent serve printed when it started.'
      : 'This server needs its token: the one llm-agent serve printed when it started.';
  const dialog = $('token-dialog');
  if (!dialog.open) dialog.showModal();
  $('token').focus();
}

async function checkStatus() {
  const status = await api.call('GET', '/api/status');
  problem('');
  const parts = [];
  for (const [name, label] of [['broker', 'Broker'], ['model', 'Model server']]) {
    const part = status[name];
    if (!part) continue;
    parts.push(`${label}: ${part.ok ? 'reachable' : 'down'}`);
    if (!part.ok) problem(`${label} down: ${part.message}`);
  }
  $('status').textContent = parts.join(' · ');
  state.maxUpload = status.max_upload_bytes || Infinity;
}

async function connect() {
  try {
    await checkStatus();
  } catch (error) {
    if (error.status === 401) return askToken(true);
    return problem(error.message);
  }
  $('token-dialog').close();
  await loadConversations();
  $('message').focus();
}

// ---- conversations ----

function newId() {
  // crypto.randomUUID needs a secure context; a plain http page on a LAN address is not one
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function conversation(id, title = '', created = false) {
  const view = new ConversationView();
  const conv = { id, title, created, view, loaded: !created };
  state.conversations.set(id, conv);
  return conv;
}

function remember() {
  const known = [...state.conversations.values()].filter((c) => c.created);
  localStorage.setItem(STORE, JSON.stringify(known.map(({ id, title }) => ({ id, title }))));
}

async function loadConversations() {
  const stored = JSON.parse(localStorage.getItem(STORE) || '[]');
  const { sessions } = await api.call('GET', '/api/chat');
  const alive = new Map(sessions.map((s) => [s.id, s]));
  for (const { id, title } of stored) {
    if (alive.has(id) && !state.conversations.has(id)) {
      conversation(id, alive.get(id).title || title, true);
    }
  }
  remember(); // forget the ones the server closed (idle too long, or restarted)
  const current = sessionStorage.getItem(CURRENT);
  await open(state.conversations.get(current) || conversation(newId()));
}

function showConversations() {
  const list = $('conversations');
  list.replaceChildren();
  for (const conv of [...state.conversations.values()].reverse()) {
    if (!conv.created && conv !== state.current) continue;
    const button = el('button', { type: 'button', class: 'conversation' });
    button.textContent = conv.title || 'Untitled conversation';
    if (conv === state.current) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => open(conv));
    list.append(el('li', {}, button));
  }
}

async function open(conv) {
  state.current = conv;
  sessionStorage.setItem(CURRENT, conv.id);
  $('log').replaceChildren(conv.view.root);
  showConversations();
  showControls();
  closeSideOnNarrow();
  if (!conv.loaded) {
    conv.loaded = true;
    try {
      conv.view.replay(await api.call('GET', api.sessionPath(conv.id, '/notebook')));
    } catch (error) {
      failed(error);
    }
  }
  scrollToEnd(true);
  await showFiles();
}

async function ensureSession(conv) {
  if (conv.created) return;
  await api.call('PUT', api.sessionPath(conv.id));
  conv.created = true;
  remember();
  showConversations();
}

// ---- files ----

function size(bytes) {
  if (bytes == null) return '';
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let n = bytes;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) {
    n /= 1000;
    unit += 1;
  }
  return unit ? `${n.toFixed(1)} ${units[unit]}` : `${n} bytes`;
}

async function showFiles() {
  const conv = state.current;
  const list = $('files');
  let entries = [];
  if (conv.created) {
    try {
      entries = (await api.call('GET', api.sessionPath(conv.id, '/files/'))).entries;
    } catch (error) {
      failed(error);
    }
  }
  if (conv !== state.current) return;
  list.replaceChildren();
  for (const entry of entries.filter((e) => e.type === 'file')) {
    const button = el('button', {
      type: 'button',
      class: 'file',
      'aria-label': `Download ${entry.name}`,
      text: entry.name,
    });
    const path = api.sessionPath(conv.id, `/files/${encodeURIComponent(entry.path)}`);
    button.addEventListener('click', () => api.download(path, entry.name).catch(failed));
    list.append(el('li', {}, button, el('span', { class: 'size', text: size(entry.size) })));
  }
  $('files-empty').hidden = list.childElementCount > 0;
}

async function uploadAll(files) {
  const conv = state.current;
  for (const file of files) {
    if (file.size > state.maxUpload) {
      problem(`${file.name} has ${size(file.size)}, over this server's limit of ${size(state.maxUpload)}.`);
      continue;
    }
    const bar = el('progress', { max: file.size || 1, value: 0, 'aria-label': `Uploading ${file.name}` });
    const item = el('li', { class: 'upload' }, el('span', { text: file.name }), bar);
    $('uploads').append(item);
    try {
      await ensureSession(conv);
      await api.upload(conv.id, file, (sent, total) => {
        bar.max = total || 1;
        bar.value = sent;
      });
      conv.view.note(`Uploaded \`${file.name}\` (${size(file.size)}).`);
      scrollToEnd();
    } catch (error) {
      failed(error);
    } finally {
      item.remove();
    }
  }
  if (conv === state.current) await showFiles();
}

// ---- asking ----

function showControls() {
  const busy = state.answering !== null;
  $('send').disabled = busy;
  $('interrupt').disabled = !(busy && state.running && state.answering === state.current);
  $('download-notebook').disabled = !state.current?.created;
}

function scrollToEnd(force = false) {
  const log = $('log');
  if (force || log.scrollHeight - log.scrollTop - log.clientHeight < 120) {
    log.scrollTop = log.scrollHeight;
  }
}

function onEvent(conv, name, data) {
  const view = conv.view;
  if (name === 'session' && !conv.created) {
    conv.created = true;
    remember();
    showConversations();
  } else if (name === 'text') view.textDelta(data.text);
  else if (name === 'tool_call') {
    view.toolCall(data);
    state.running = data.call_id;
  } else if (name === 'tool_output') view.toolOutput(data);
  else if (name === 'tool_result') {
    view.toolResult(data);
    state.running = null;
    if (conv === state.current) showFiles();
  } else if (name === 'error') {
    view.error(data.message);
    checkStatus().catch(failed); // the banner says which server is down, if one is
  }
  showControls();
  if (conv === state.current) scrollToEnd();
}

async function send(text) {
  const conv = state.current;
  if (state.answering || !text.trim()) return;
  if (!conv.title) {
    conv.title = text.trim().split('\n')[0].slice(0, 80);
    remember();
    showConversations();
  }
  conv.view.user(text);
  scrollToEnd(true);
  state.answering = conv;
  showControls();
  try {
    await api.chat(text, conv.id, (name, data) => onEvent(conv, name, data));
  } catch (error) {
    conv.view.error(error.message);
    failed(error);
  } finally {
    conv.view.end();
    state.answering = null;
    state.running = null;
    showControls();
    if (conv === state.current) await showFiles();
  }
}

async function interrupt() {
  const conv = state.answering;
  if (!conv || !state.running) return;
  try {
    await api.call('POST', api.sessionPath(conv.id, '/interrupt'));
  } catch (error) {
    failed(error);
  }
}

// ---- wiring ----

function closeSideOnNarrow() {
  document.body.classList.remove('side-open');
  $('toggle-side').setAttribute('aria-expanded', 'false');
}

function wire() {
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    api.setToken($('token').value.trim());
    $('token').value = '';
    connect();
  });
  $('token-dialog').addEventListener('cancel', (e) => e.preventDefault()); // nothing works without it
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('message').value;
    if (state.answering || !text.trim()) return;
    $('message').value = '';
    send(text);
  });
  $('message').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.running) interrupt();
  });
  $('interrupt').addEventListener('click', interrupt);
  $('new-chat').addEventListener('click', () => {
    open(conversation(newId()));
    $('message').focus();
  });
  $('download-notebook').addEventListener('click', () => {
    const conv = state.current;
    const name = `${conv.title || 'conversation'}.ipynb`;
    api.download(api.sessionPath(conv.id, '/notebook'), name).catch(failed);
  });
  $('upload').addEventListener('change', (e) => {
    uploadAll([...e.target.files]);
    e.target.value = '';
  });
  $('toggle-side').addEventListener('click', () => {
    const open = document.body.classList.toggle('side-open');
    $('toggle-side').setAttribute('aria-expanded', String(open));
  });
  wireDrop();
}

function wireDrop() {
  let depth = 0; // dragenter and dragleave fire for every element crossed
  const overlay = $('drop-overlay');
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener('dragleave', (e) => {
    if (hasFiles(e) && --depth <= 0) overlay.hidden = true;
  });
  document.addEventListener('dragover', (e) => {
    if (hasFiles(e)) e.preventDefault(); // allows the drop
  });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    uploadAll([...e.dataTransfer.files]);
  });
}

wire();
connect();
