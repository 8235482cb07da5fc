'use strict';
// The learnerprobe page. Every value from the server (bundle manifests, labels, masked spans) is
// untrusted: it is written with textContent/createElement only, never parsed as HTML, and the
// Content-Security-Policy allows no inline script. Span offsets from the server count Unicode
// code points (Python str indices) in `masked.source` (the NFC form of the text sent); JS strings
// are UTF-16, so the text is sliced as code points (Array.from), never with String.slice.

function node(tag, text, className) {
  const el = document.createElement(tag);
  if (text !== undefined && text !== null) el.textContent = String(text);
  if (className) el.className = className;
  return el;
}

function str(v, fallback) {
  if (v === undefined || v === null) return fallback === undefined ? '' : fallback;
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function num(v) {
  const x = Number(v);
  return Number.isFinite(x) ? x : null;
}

function chart(el, probs) {
  el.replaceChildren();
  if (!probs || typeof probs !== 'object') return;
  const entries = Object.entries(probs).map(([k, v]) => [k, num(v) ?? 0]).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of entries) {
    const row = node('div', null, 'bar-row');
    const bar = node('span', null, 'bar');
    bar.style.width = `${(Math.max(0, Math.min(1, p)) * 20).toFixed(2)}rem`;
    row.append(node('span', label, 'bar-label'), bar, node('span', `${(100 * p).toFixed(1)}%`, 'bar-val'));
    el.appendChild(row);
  }
}

function highlight(el, original, masked) {
  // Rebuild the masked text from the original, each replacement in a <mark>; offsets are code points.
  el.replaceChildren();
  const cps = Array.from(original);
  const spans = masked && Array.isArray(masked.spans) ? masked.spans : [];
  let pos = 0;
  for (const s of spans) {
    const start = num(s && s.start), end = num(s && s.end);
    if (start === null || end === null || !Number.isInteger(start) || !Number.isInteger(end)
        || start < pos || end < start || end > cps.length) continue;  // malformed span: skip it
    el.append(document.createTextNode(cps.slice(pos, start).join('')));
    const mark = node('mark', str(s.replacement));
    mark.title = `${str(s.category)}: ${str(s.original)}`;
    el.append(mark);
    pos = end;
  }
  el.append(document.createTextNode(cps.slice(pos).join('')));
}

function setText(members, ordinal) {
  const m = Array.isArray(members) ? members.map((x) => str(x)) : [];
  if (!m.length) return '∅';
  if (ordinal) return m.length === 1 ? m[0] : `${m[0]}–${m[m.length - 1]}`;
  return `{${m.join(', ')}}`;
}

const FLAG_TEXT = {
  language: (c) => `Language: the text looks like ${str(c.language, '?')}; this model was trained on `
    + `${Array.isArray(c.training_languages) ? c.training_languages.map((x) => str(x)).join(', ') : '?'} only.`,
  length: (c) => `Length: ${str(c.words, '?')} words; the model's training texts had `
    + `${Array.isArray(c.training_words) ? c.training_words.map((x) => str(x)).join('–') : '?'} words (central 98 %).`,
  unfamiliar: (c) => `Unfamiliar: the text is farther from the training texts than 95 % of the validation texts `
    + `(distance ${str(c.distance, '?')} > ${str(c.threshold, '?')}).`,
};

function limits(task, res) {
  // The prediction set and the applicability warnings of one task's result.
  const set = document.getElementById(`${task}-set`);
  const flags = document.getElementById(`${task}-flags`);
  set.textContent = '';
  flags.replaceChildren();
  const cov = num(res.coverage);
  if (Array.isArray(res.set) && cov !== null) {
    set.textContent = `${task === 'cefr' ? 'Range' : 'Set'} at ${(100 * cov).toFixed(0)} % coverage: `
      + setText(res.set, task === 'cefr');
  } else if (res.note) {
    set.textContent = str(res.note);
  }
  const checks = res.checks && typeof res.checks === 'object' ? res.checks : {};
  const f = res.flags && typeof res.flags === 'object' ? res.flags : {};
  for (const k of Object.keys(FLAG_TEXT)) {
    if (f[k] === true) flags.appendChild(node('li', FLAG_TEXT[k](checks), 'warning'));
  }
}

function metricValue(v) {
  const x = num(v && typeof v === 'object' ? v.value : v);
  return x === null ? str(v && typeof v === 'object' ? v.value : v, '?').slice(0, 12) : x.toFixed(3);
}

function calibration(a) {
  if (!a || typeof a !== 'object') return 'not recorded (retrain for prediction sets and warnings)';
  const e = num(a.validation_ece);
  return `validation ECE ${e === null ? '?' : e.toFixed(3)} on ${str(a.n_calibration, '?')} validation texts `
    + '(the calibration set of the prediction sets)';
}

function card(task, man) {
  man = man && typeof man === 'object' ? man : {};
  const c = man.card && typeof man.card === 'object' ? man.card : {};
  const td = man.training_data && typeof man.training_data === 'object' ? man.training_data : {};
  const model = man.model && typeof man.model === 'object' ? man.model : null;
  const div = node('div', null, 'card');
  const head = node('div');
  head.append(node('b', str(task).toUpperCase()), document.createTextNode(`: ${str(man.method, '?')}`));
  if (model) head.append(document.createTextNode(` on ${str(model.name, '?')} layer ${str(man.layer, '?')}`));
  const corpora = Array.isArray(td.corpora) ? td.corpora.map((x) => str(x)).join(', ') : str(td.corpora);
  const labels = Array.isArray(man.labels) ? man.labels.map((x) => str(x)).join(', ') : str(man.labels);
  const validation = man.metrics && typeof man.metrics === 'object' && man.metrics.validation
    && typeof man.metrics.validation === 'object' ? man.metrics.validation : {};
  const metrics = Object.entries(validation).map(([k, v]) => `${k} ${metricValue(v)}`).join(', ');
  div.append(
    head,
    node('div', `Data: ${corpora} (${str(td.n_texts, '?')} texts). Labels: ${labels}`),
    node('div', `Validation: ${metrics || 'n/a'}`),
    node('div', `Limits: ${str(c.limits, 'see manifest')}`),
    node('div', `Calibration: ${calibration(man.applicability)}`),
  );
  return div;
}

async function loadCards() {
  const cards = document.getElementById('cards');
  try {
    const r = await fetch('/api/bundles');
    const m = await r.json();
    cards.replaceChildren();
    if (!m || typeof m !== 'object') return;
    for (const [task, man] of Object.entries(m)) cards.appendChild(card(task, man));
  } catch (e) {
    cards.replaceChildren(node('p', `Could not load the models: ${e}`, 'error'));
  }
}

async function submit(ev) {
  ev.preventDefault();
  const err = document.getElementById('error');
  err.textContent = '';
  const text = document.getElementById('text').value;
  let r, data;
  try {
    r = await fetch('/api/predict', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                     body: JSON.stringify({text})});
    data = await r.json();
  } catch (e) {
    err.textContent = r ? `${r.status} ${r.statusText}` : String(e);
    return;
  }
  if (!r.ok) {
    err.textContent = data && data.detail !== undefined ? str(data.detail) : `${r.status} ${r.statusText}`;
    return;
  }
  document.getElementById('result').classList.remove('hidden');
  for (const task of ['cefr', 'l1']) {
    const box = document.getElementById(`${task}-box`);
    const res = data[task];
    box.classList.toggle('hidden', !res);
    if (!res) continue;
    if (task === 'cefr') {
      const score = num(res.score);
      document.getElementById('cefr-level').textContent = str(res.label)
        + (score !== null ? ` (score ${score.toFixed(2)})` : '');
    }
    limits(task, res);
    chart(document.getElementById(`${task}-chart`), res.probabilities);
  }
  const masked = data.masked && typeof data.masked === 'object' ? data.masked : {};
  highlight(document.getElementById('masked'), typeof masked.source === 'string' ? masked.source : text, masked);
}

document.getElementById('f').addEventListener('submit', submit);
loadCards();
