// What the conversation holds, turned into DOM nodes built from text: the model's
// markdown, code with highlighting, and kernel outputs (streams, tables, images, errors).
// Nothing received is ever inserted as live HTML: a kernel's HTML output is rebuilt
// from an allow-list of tags and attributes, and images are data URLs in <img>.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children);
  return node;
}

// nbformat splits multi-line strings into lists of lines
export const joined = (value) => (Array.isArray(value) ? value.join('') : value ?? '');

// ---- code highlighting: a tokenizer per comment style, keywords per language ----

const KEYWORDS = {
  python:
    'False None True and as assert async await break case class continue def del elif ' +
    'else except finally for from global if import in is lambda match nonlocal not or ' +
    'pass raise return try while with yield',
  r: 'if else repeat while function for in next break TRUE FALSE NULL Inf NaN NA return',
  bash: 'if then else elif fi case esac for while until do done in function return local export',
  javascript:
    'async await break case catch class const continue default delete do else export ' +
    'extends false finally for from function if import in instanceof let new null return ' +
    'super switch this throw true try typeof undefined var void while yield',
};
KEYWORDS.typescript = `${KEYWORDS.javascript} interface type enum implements readonly`;
const BUILTINS = {
  python:
    'print len range open int float str list dict set tuple sum min max abs sorted ' +
    'enumerate zip map filter isinstance round type self',
};
const STRING =
  /[rRbBuUfF]{0,2}(?:'''[\s\S]*?(?:'''|$)|"""[\s\S]*?(?:"""|$)|'(?:\\.|[^'\\\n])*'?|"(?:\\.|[^"\\\n])*"?|`(?:\\.|[^`\\])*`?)/
    .source;
const NUMBER = /\b\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?\b/.source;
const WORD = /[A-Za-z_$][\w$]*/.source;
const HASH = /#[^\n]*/.source;
const SLASH = /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/.source;

function words(table, language) {
  return new Set((table[language] || '').split(' '));
}

export function highlight(code, language = 'python') {
  const lang = String(language).toLowerCase();
  const comment = lang === 'javascript' || lang === 'typescript' ? SLASH : HASH;
  const tokens = new RegExp(`(${comment})|(${STRING})|(${NUMBER})|(${WORD})`, 'g');
  const keywords = words(KEYWORDS, lang);
  const builtins = words(BUILTINS, lang);
  const out = document.createDocumentFragment();
  let last = 0;
  for (const match of code.matchAll(tokens)) {
    const [text, com, str, num, word] = match;
    if (match.index > last) out.append(code.slice(last, match.index));
    let kind = '';
    if (com) kind = 'com';
    else if (str) kind = 'str';
    else if (num) kind = 'num';
    else if (keywords.has(word)) kind = 'kw';
    else if (builtins.has(word)) kind = 'bi';
    out.append(kind ? el('span', { class: `tok-${kind}`, text }) : text);
    last = match.index + text.length;
  }
  out.append(code.slice(last));
  return out;
}

export function codeBlock(code, language) {
  return el('pre', { class: 'code' }, el('code', {}, highlight(code, language)));
}

// ---- markdown: the subset models write (paragraphs, headings, lists, fences, tables) ----

const INLINE =
  /(`+)([\s\S]*?)\1|\*\*([\s\S]+?)\*\*|__([\s\S]+?)__|\*([^*\s][^*]*?)\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;

function inline(text) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    out.append(text.slice(last, m.index));
    if (m[1]) out.append(el('code', { text: m[2] }));
    else if (m[3] || m[4]) out.append(el('strong', {}, inline(m[3] || m[4])));
    else if (m[5]) out.append(el('em', {}, inline(m[5])));
    else out.append(el('a', { href: m[7], rel: 'noopener noreferrer', target: '_blank' }, m[6]));
    last = m.index + m[0].length;
  }
  out.append(text.slice(last));
  return out;
}

const FENCE = /^\s*(```|~~~)\s*([\w+-]*)/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const ITEM = /^\s*([-*+]|\d+[.)])\s+(.*)$/;
const RULE = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;
const cells = (line) =>
  line
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());

function blockStarts(line, next) {
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    ITEM.test(line) ||
    line.startsWith('>') ||
    (line.trim().startsWith('|') && RULE.test(next || ''))
  );
}

export function markdown(source) {
  const lines = source.split('\n');
  const out = document.createDocumentFragment();
  let i = 0;
  const take = (test) => {
    const taken = [];
    while (i < lines.length && test(lines[i])) taken.push(lines[i++]);
    return taken;
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      i += 1;
    } else if ((m = line.match(FENCE))) {
      i += 1;
      const body = take((l) => !l.trimStart().startsWith(m[1]));
      i += 1;
      out.append(codeBlock(body.join('\n'), m[2] || 'text'));
    } else if ((m = line.match(HEADING))) {
      i += 1;
      out.append(el(`h${Math.min(6, m[1].length + 2)}`, {}, inline(m[2])));
    } else if (ITEM.test(line)) {
      const ordered = /\d/.test(line.match(ITEM)[1]);
      const items = take((l) => ITEM.test(l) || /^\s{2,}\S/.test(l));
      const list = el(ordered ? 'ol' : 'ul');
      for (const item of items) {
        const im = item.match(ITEM);
        if (im) list.append(el('li', {}, inline(im[2])));
        else list.lastChild?.append(' ', inline(item.trim()));
      }
      out.append(list);
    } else if (line.startsWith('>')) {
      const quoted = take((l) => l.startsWith('>')).map((l) => l.replace(/^>\s?/, ''));
      out.append(el('blockquote', {}, markdown(quoted.join('\n'))));
    } else if (line.trim().startsWith('|') && RULE.test(lines[i + 1] || '')) {
      const head = cells(line);
      i += 2;
      const rows = take((l) => l.trim().startsWith('|'));
      const thead = el('thead', {}, el('tr', {}, ...head.map((c) => el('th', {}, inline(c)))));
      const tbody = el(
        'tbody',
        {},
        ...rows.map((r) => el('tr', {}, ...cells(r).map((c) => el('td', {}, inline(c))))),
      );
      out.append(el('div', { class: 'table-wrap' }, el('table', {}, thead, tbody)));
    } else {
      const para = [lines[i++]];
      while (i < lines.length && lines[i].trim() && !blockStarts(lines[i], lines[i + 1])) {
        para.push(lines[i++]);
      }
      out.append(el('p', {}, inline(para.join('\n'))));
    }
  }
  return out;
}

// ---- kernel outputs ----

const KEEP = new Set(
  ('TABLE THEAD TBODY TFOOT TR TH TD CAPTION COLGROUP COL DIV SPAN P BR B STRONG I EM U S ' +
    'CODE PRE UL OL LI DL DT DD H1 H2 H3 H4 H5 H6 SMALL SUB SUP HR BLOCKQUOTE ABBR').split(' '),
);
const DROP = new Set(
  ('SCRIPT STYLE TEMPLATE IFRAME FRAME OBJECT EMBED NOSCRIPT LINK META TITLE BASE SVG MATH ' +
    'FORM INPUT BUTTON SELECT TEXTAREA IMG PICTURE VIDEO AUDIO SOURCE CANVAS').split(' '),
);
const ATTRIBUTES = new Set(['colspan', 'rowspan', 'align', 'class']);

function rebuild(from, to) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      to.append(node.textContent);
    } else if (node.nodeType === Node.ELEMENT_NODE && !DROP.has(node.tagName)) {
      if (!KEEP.has(node.tagName)) {
        rebuild(node, to); // an element not on the list (a link, a font): its text only
        continue;
      }
      const clean = document.createElement(node.tagName.toLowerCase());
      for (const { name, value } of node.attributes) {
        if (ATTRIBUTES.has(name) && /^[\w\s-]*$/.test(value)) clean.setAttribute(name, value);
      }
      rebuild(node, clean);
      to.append(clean);
    }
  }
}

// A kernel's HTML (a pandas table): parsed inertly, rebuilt from allowed parts only.
export function sanitizedHTML(html) {
  const parsed = new DOMParser().parseFromString(html, 'text/html');
  const out = el('div', { class: 'html-output' });
  rebuild(parsed.body, out);
  return out;
}

function image(src, plain, producer) {
  const what = plain.replace(/[<>]/g, '').trim();
  const alt = `Image produced by ${producer}${what ? `: ${what}` : ''}`;
  return el('img', { src, alt, class: 'image-output' });
}

// The richest form of a display bundle; `producer` names what made it ("code run 2").
export function bundle(data, producer) {
  const value = (mime) => joined(data[mime]);
  const plain = value('text/plain');
  for (const mime of ['image/png', 'image/jpeg']) {
    if (data[mime]) return image(`data:${mime};base64,${value(mime).trim()}`, plain, producer);
  }
  if (data['image/svg+xml']) {
    const svg = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(value('image/svg+xml'))}`;
    return image(svg, plain, producer);
  }
  if (data['text/html']) return sanitizedHTML(value('text/html'));
  if (data['text/markdown']) return el('div', { class: 'md' }, markdown(value('text/markdown')));
  if (data['application/json'] !== undefined && !plain) {
    return el('pre', { class: 'result', text: JSON.stringify(data['application/json'], null, 2) });
  }
  return el('pre', { class: 'result', text: plain });
}

// Printed text: appended to the block of the same stream when it is the last output.
export function appendStream(outputs, name, text) {
  const last = outputs.lastElementChild;
  if (last && last.dataset.stream === name) {
    last.append(text);
  } else {
    const block = el('pre', { class: `stream ${name}`, 'data-stream': name }, text);
    if (name === 'stderr') block.setAttribute('aria-label', 'standard error');
    outputs.append(block);
  }
}

export function errorBlock(traceback) {
  return el('pre', { class: 'error-output', 'aria-label': 'error' }, traceback);
}
