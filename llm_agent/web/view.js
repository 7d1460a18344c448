// One conversation on screen: the person's messages, the assistant's streamed text, and
// each code run with its outputs as they arrive. Built live from the chat's events, or
// again from the session's notebook (the transcript names each cell's role).

import { appendStream, bundle, codeBlock, el, errorBlock, joined, markdown } from './render.js';

const PREFIX = { user: /^\*\*User:\*\* /, assistant: /^\*\*Assistant:\*\* / };

export class ConversationView {
  constructor(language = 'python') {
    this.root = el('div', { class: 'turns' });
    this.language = language;
    this.runs = 0;
    this.turn = null; // the assistant's turn being written
    this.text = null; // its text segment being streamed: { raw, node }
    this.calls = new Map(); // call id -> run
  }

  user(text) {
    this.end();
    const bubble = el('div', { class: 'bubble', text });
    this.root.append(el('article', { class: 'turn user', 'aria-label': 'You' }, bubble));
  }

  assistant() {
    if (!this.turn) {
      this.turn = el('article', { class: 'turn assistant', 'aria-label': 'Assistant' });
      this.root.append(this.turn);
    }
    return this.turn;
  }

  textDelta(delta) {
    if (!this.text) {
      this.text = { raw: '', node: el('div', { class: 'md' }) };
      this.assistant().append(this.text.node);
    }
    this.text.raw += delta;
    this.text.node.replaceChildren(markdown(this.text.raw));
  }

  run(code, language) {
    this.text = null;
    this.runs += 1;
    const label = `Code run ${this.runs}`;
    const state = el('span', { class: 'run-state', text: 'running…' });
    const outputs = el('div', { class: 'outputs' });
    const head = el('div', { class: 'run-head' }, el('span', { text: label }), state);
    const section = el(
      'section',
      { class: 'run running', 'aria-label': label },
      head,
      codeBlock(code, language || this.language),
      outputs,
    );
    this.assistant().append(section);
    return { producer: label.toLowerCase(), state, outputs, section };
  }

  toolCall({ call_id: id, code, language }) {
    this.calls.set(id, this.run(code, language));
  }

  toolOutput({ call_id: id, stream, text, data, traceback }) {
    const run = this.calls.get(id);
    if (!run) return;
    if (stream === 'result') run.outputs.append(bundle(data, run.producer));
    else if (stream === 'error') run.outputs.append(errorBlock(traceback || text));
    else appendStream(run.outputs, stream, text);
  }

  toolResult({ call_id: id, ok, text, execution_count: count, kernel_restarted: restarted }) {
    const run = this.calls.get(id);
    if (!run) {
      // the model's call was not run (bad arguments): say what it was told
      this.note(`The model's tool call was not run: ${text}`, this.assistant());
      return;
    }
    this.finish(run, ok, count);
    if (restarted) this.note('The kernel was restarted: its variables are gone.', run.section);
  }

  finish(run, ok, count) {
    run.section.classList.remove('running');
    run.section.classList.add(ok ? 'ok' : 'failed');
    const where = count ? ` · In [${count}]` : '';
    run.state.textContent = `${ok ? 'done' : 'failed'}${where}`;
  }

  note(text, where = this.root) {
    where.append(el('div', { class: 'note' }, markdown(text)));
  }

  error(message) {
    const turn = this.assistant();
    turn.append(el('p', { class: 'turn-error', text: `The answer failed: ${message}` }));
  }

  end() {
    this.turn = null;
    this.text = null;
    for (const run of this.calls.values()) {
      if (run.section.classList.contains('running')) this.finish(run, false, null);
    }
    this.calls.clear();
  }

  // The conversation again, from its notebook.
  replay(notebook) {
    this.language = notebook.metadata?.kernelspec?.language || this.language;
    for (const cell of notebook.cells) {
      const source = joined(cell.source);
      const role = cell.metadata?.llm_agent?.role;
      if (cell.cell_type === 'code') this.replayRun(cell, source);
      else if (role === 'user') this.user(source.replace(PREFIX.user, ''));
      else if (role === 'assistant') {
        this.textDelta(source.replace(PREFIX.assistant, ''));
        this.text = null;
      } else if (role === 'upload') this.note(source);
      else if (role === 'notice') this.note(source, this.turn || this.root);
    }
    this.end();
  }

  replayRun(cell, source) {
    const run = this.run(source, this.language);
    let ok = true;
    for (const out of cell.outputs) {
      if (out.output_type === 'stream') appendStream(run.outputs, out.name, joined(out.text));
      else if (out.output_type === 'error') {
        ok = false;
        run.outputs.append(errorBlock(out.traceback.join('\n')));
      } else run.outputs.append(bundle(out.data, run.producer));
    }
    this.finish(run, ok, cell.execution_count);
  }
}
