/*
 * The console's one script (plain JavaScript, no build, no library): live updates from
 * /api/v1/stream (the regions marked data-live-region are read again and swapped in, except the
 * one that holds the keyboard focus), copy buttons, filtering of list rows as you type, the
 * buttons that call the admin API (retry, hold, release, delete, retry quarantined), the config
 * editor's validation as you type and the setup wizard. Pages work without it, read-only.
 * Requests carry the session's CSRF token (GET /api/v1/session) when signed in with a session.
 */
/* global document, window, navigator, EventSource, DOMParser */
'use strict';
(function () {
  var lang = document.documentElement.lang === 'de' ? 'de' : 'en';
  var TEXT = {
    en: { copied: 'Copied: ', updated: 'Updated at ', done: 'Done: ', refused: 'Refused', code: 'Code', cause: 'Cause', fix: 'Fix', more: 'About ' },
    de: { copied: 'Kopiert: ', updated: 'Aktualisiert um ', done: 'Erledigt: ', refused: 'Abgelehnt', code: 'Code', cause: 'Ursache', fix: 'Behebung', more: 'Mehr zu ' },
  }[lang];
  var dataEl = document.getElementById('page-data');
  var page = dataEl ? JSON.parse(dataEl.textContent || '{}') : {};
  var texts = page.texts || {};
  function fmt(s, p) {
    return String(s).replace(/\{(\w+)\}/g, function (w, k) {
      return p && k in p ? String(p[k]) : w;
    });
  }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  function announce(text) {
    var s = document.getElementById('status');
    if (!s) return;
    // Emptied first so the same message is announced again.
    s.textContent = '';
    setTimeout(function () {
      s.textContent = text;
    }, 50);
  }

  // ── the API, with the session's CSRF token when there is a session ─────────────────────────
  var csrf;
  function csrfToken() {
    if (csrf) return csrf;
    csrf = fetch('/api/v1/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        return r.ok ? r.json() : {};
      })
      .then(function (s) {
        return s.csrfToken || '';
      })
      .catch(function () {
        return '';
      });
    return csrf;
  }
  function api(method, url, body) {
    return csrfToken().then(function (token) {
      var headers = { accept: 'application/json' };
      if (token) headers['x-csrf-token'] = token;
      var init = { method: method, headers: headers, credentials: 'same-origin' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      return fetch(url, init).then(function (r) {
        return r.text().then(function (t) {
          var json;
          try {
            json = t ? JSON.parse(t) : {};
          } catch {
            json = {};
          }
          return { ok: r.ok, status: r.status, body: json };
        });
      });
    });
  }

  /** An MB error from the API as the console shows problems: code, title, cause, fix, documentation link. */
  function problemEl(e) {
    return el('div', { class: 'problem', 'data-code': e.code }, [
      el('h3', { text: e.title || TEXT.refused }),
      el('dl', {}, [
        el('dt', { text: TEXT.code }),
        el('dd', {}, [el('code', { text: e.code }), ' ', el('a', { href: '/docs/' + lang + '/errors/' + e.code, text: TEXT.more + e.code })]),
        el('dt', { text: TEXT.cause }),
        el('dd', { text: e.cause || '' }),
        el('dt', { text: TEXT.fix }),
        el('dd', { text: e.fix || '' }),
      ]),
    ]);
  }
  function showError(e) {
    var main = document.getElementById('main');
    var box = document.getElementById('action-error');
    if (!box) {
      box = el('div', { id: 'action-error', role: 'alert', class: 'action-error' });
      main.insertBefore(box, main.children[1] || null);
    }
    box.textContent = '';
    box.appendChild(problemEl(e));
  }
  function clearError() {
    var box = document.getElementById('action-error');
    if (box) box.remove();
  }

  // ── copy buttons ───────────────────────────────────────────────────────────────────────────
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('button[data-copy]');
    if (!b) return;
    var text = b.getAttribute('data-copy');
    var done = function () {
      b.setAttribute('data-copied', 'true');
      announce(TEXT.copied + text);
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
    function fallback() {
      var ta = el('textarea', { class: 'visually-hidden', 'aria-hidden': 'true' });
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
      b.focus();
      done();
    }
  });

  // ── filters: rows of a table that contain the typed text ────────────────────────────────────
  function applyFilters() {
    document.querySelectorAll('input[data-filter]').forEach(function (input) {
      var table = document.getElementById(input.getAttribute('data-filter'));
      if (!table) return;
      var q = input.value.trim().toLowerCase();
      table.querySelectorAll('tbody tr').forEach(function (tr) {
        tr.hidden = q !== '' && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
  document.addEventListener('input', function (ev) {
    if (ev.target.matches && ev.target.matches('input[data-filter]')) applyFilters();
  });

  // ── live updates ───────────────────────────────────────────────────────────────────────────
  var refreshTimer;
  function refresh() {
    return fetch(window.location.href, { headers: { accept: 'text/html' }, credentials: 'same-origin' })
      .then(function (r) {
        return r.ok ? r.text() : undefined;
      })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        doc.querySelectorAll('[data-live-region][id]').forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          // The region the admin is working in stays as it is; it is read again at the next change.
          if (!old || old.contains(document.activeElement)) return;
          old.replaceWith(document.importNode(fresh, true));
        });
        applyFilters();
        announce(TEXT.updated + new Date().toLocaleTimeString(lang === 'de' ? 'de-DE' : 'en-GB'));
      });
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 300);
  }
  var main = document.getElementById('main');
  var topics = main && main.getAttribute('data-topics');
  if (topics && window.EventSource) {
    var source = new EventSource('/api/v1/stream?topics=' + encodeURIComponent(topics));
    topics.split(',').forEach(function (t) {
      source.addEventListener(t, scheduleRefresh);
    });
    window.addEventListener('pagehide', function () {
      source.close();
    });
  }

  // ── sign-out: the session ends on the server, then the sign-in page ───────────────────────
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('button[data-signout]');
    if (!b) return;
    api('DELETE', '/api/v1/session').then(function (r) {
      if (!r.ok) return showError(r.body.error || { code: 'HTTP ' + r.status });
      window.location.assign('/login?lang=' + lang);
    });
  });

  // ── buttons that call the API ──────────────────────────────────────────────────────────────
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('button[data-action]');
    if (!b) return;
    var confirmText = b.getAttribute('data-confirm');
    if (confirmText && !window.confirm(confirmText)) return;
    b.disabled = true;
    api(b.getAttribute('data-method'), b.getAttribute('data-url'))
      .then(function (r) {
        if (!r.ok) return showError(r.body.error || { code: 'HTTP ' + r.status });
        clearError();
        announce(TEXT.done + b.textContent);
        return refresh();
      })
      .finally(function () {
        b.disabled = false;
      });
  });

  // ── config editor: validated as it is edited ────────────────────────────────────────────────
  var editor = document.getElementById('config-editor');
  if (editor) {
    var gutter = document.getElementById('config-gutter');
    var list = document.getElementById('config-problems');
    var summary = document.getElementById('config-summary');
    var validateTimer;
    var lastValid = true;
    var seq = 0;
    var drawGutter = function (bad) {
      var n = editor.value.split('\n').length;
      var lines = [];
      for (var i = 1; i <= n; i++) lines.push((bad[i] ? '● ' : '  ') + i);
      gutter.textContent = lines.join('\n');
      gutter.scrollTop = editor.scrollTop;
    };
    var gotoLine = function (line) {
      var parts = editor.value.split('\n');
      var start = 0;
      for (var i = 0; i < line - 1 && i < parts.length; i++) start += parts[i].length + 1;
      editor.focus();
      editor.setSelectionRange(start, start + (parts[line - 1] || '').length);
    };
    var validate = function () {
      var mine = ++seq;
      summary.textContent = texts.checking;
      api('POST', editor.getAttribute('data-validate'), { yaml: editor.value }).then(function (r) {
        if (mine !== seq) return;
        list.textContent = '';
        if (!r.ok) {
          lastValid = false;
          summary.textContent = '';
          list.appendChild(el('li', {}, [problemEl(r.body.error || { code: 'HTTP ' + r.status })]));
          return;
        }
        var all = r.body.errors.concat(r.body.warnings);
        var bad = {};
        lastValid = r.body.valid;
        editor.setAttribute('aria-invalid', r.body.valid ? 'false' : 'true');
        summary.textContent = all.length === 0 ? texts.valid : fmt(texts.errors, { n: r.body.errors.length }) + ', ' + fmt(texts.warnings, { n: r.body.warnings.length });
        all.forEach(function (p) {
          if (p.line) bad[p.line] = true;
          var where = p.line ? fmt(texts.line, { line: p.line }) : texts.whole;
          var head = el('p', { class: 'where' }, [
            p.line ? el('button', { type: 'button', class: 'link', 'data-line': String(p.line), 'aria-label': fmt(texts.goto, { line: p.line }), text: where }) : where,
            ' (' + p.path + '): ',
            el('code', { text: p.code }),
            ' ',
            el('strong', { text: p.title }),
          ]);
          list.appendChild(
            el('li', { class: 'problem problem-' + p.severity, 'data-code': p.code, 'data-line': p.line ? String(p.line) : '' }, [
              head,
              el('p', {}, [texts.cause + ': ' + p.cause]),
              el('p', {}, [texts.fix + ': ' + p.fix]),
              el('p', {}, [el('a', { href: '/docs/' + lang + '/errors/' + p.code, text: fmt(texts.more, { code: p.code }) })]),
            ]),
          );
        });
        drawGutter(bad);
      });
    };
    list.addEventListener('click', function (ev) {
      var b = ev.target.closest && ev.target.closest('button[data-line]');
      if (b) gotoLine(Number(b.getAttribute('data-line')));
    });
    editor.addEventListener('input', function () {
      drawGutter({});
      clearTimeout(validateTimer);
      validateTimer = setTimeout(validate, 400);
    });
    editor.addEventListener('scroll', function () {
      gutter.scrollTop = editor.scrollTop;
    });
    document.getElementById('config-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (!lastValid) {
        var first = list.querySelector('button[data-line]');
        if (first) first.focus();
        return;
      }
      api('POST', '/api/v1/config/apply', { text: editor.value }).then(function (r) {
        if (!r.ok) return showError(r.body.error || { code: 'HTTP ' + r.status });
        clearError();
        var said = [texts.applied];
        if (r.body.restarted.length) said.push(fmt(texts.restarted, { list: r.body.restarted.join(', ') }));
        if (r.body.needsRestart.length) said.push(fmt(texts.needsRestart, { list: r.body.needsRestart.join(', ') }));
        var result = said.join(' ');
        summary.textContent = result;
        announce(result);
        // The file as now written, masked again: a secret just typed does not stay on the page.
        return api('GET', editor.getAttribute('data-file')).then(function (f) {
          if (!f.ok) return;
          editor.value = f.body.text;
          drawGutter({});
        });
      });
    });
    drawGutter({});
  }

  // ── setup wizard ───────────────────────────────────────────────────────────────────────────
  var setupForm = document.getElementById('setup-form');
  if (setupForm) {
    var STEPS = ['signin', 'creating', 'script', 'checking'];
    var lastStep = 'signin';
    var stepEl = function (s) {
      return document.getElementById('step-' + s);
    };
    var mark = function (s, status) {
      var li = stepEl(s);
      if (li.getAttribute('data-status') === status) return;
      li.setAttribute('data-status', status);
      li.querySelector('.step-status').textContent = texts[status === 'current' ? 'current' : status];
      if (status === 'current') li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    };
    var body = function (s) {
      return stepEl(s).querySelector('.step-body');
    };
    var checkList = function (checks) {
      var ul = body('checking').querySelector('ul.checks') || body('checking').appendChild(el('ul', { class: 'checks' }));
      checks.forEach(function (c) {
        var id = 'check-' + String(c.id).replace(/[^A-Za-z0-9_-]/g, '_');
        var li = document.getElementById(id);
        if (li && li.getAttribute('data-status') === c.status) return;
        var fresh = el('li', { id: id, class: 'check check-' + c.status, 'data-status': c.status }, [
          el('span', { class: 'badge badge-' + (c.status === 'ok' ? 'green' : c.status === 'fail' ? 'red' : 'amber'), text: texts[c.status] || texts.pending }),
          ' ' + c.title,
        ]);
        if (c.code && c.status !== 'ok') {
          fresh.appendChild(problemEl({ code: c.code, title: c.title, cause: c.cause, fix: c.fix }));
          if (c.command) fresh.appendChild(el('p', {}, [el('code', { text: c.command }), ' ', el('button', { type: 'button', class: 'copy', 'data-copy': c.command, 'aria-label': texts.copyWhat + ': ' + c.command, text: texts.copy })]));
        }
        if (li) li.replaceWith(fresh);
        else ul.appendChild(fresh);
      });
    };
    var render = function (run) {
      // A check run has no step: it is the last step of the wizard. A failed run names no step:
      // the one it was in when last seen is the one that failed.
      var step = run.step || (run.state === 'running' ? 'checking' : run.state === 'failed' ? 'checking' : 'done');
      if (step === 'failed') step = lastStep;
      else if (step !== 'done') lastStep = step;
      var at = step === 'done' ? STEPS.length : STEPS.indexOf(step);
      STEPS.forEach(function (s, i) {
        mark(s, i < at ? 'done' : i === at ? (run.state === 'failed' ? 'failed' : 'current') : 'pending');
      });
      if (run.deviceCode && !body('signin').firstChild) {
        body('signin').appendChild(
          el('p', {}, [texts.open.split('{uri}')[0], el('a', { href: run.deviceCode.verificationUri, target: '_blank', rel: 'noopener', text: run.deviceCode.verificationUri }), (texts.open.split('{uri}')[1] || '') + ': ', el('code', { class: 'user-code', text: run.deviceCode.userCode }), ' ', el('button', { type: 'button', class: 'copy', 'data-copy': run.deviceCode.userCode, 'aria-label': texts.copyWhat + ': ' + run.deviceCode.userCode, text: texts.copy })]),
        );
      }
      if (run.appId && !body('creating').firstChild) body('creating').appendChild(el('p', { text: fmt(texts.appId, { appId: run.appId }) }));
      if (run.script && !body('script').firstChild) {
        body('script').appendChild(el('p', { text: texts.scriptHint }));
        body('script').appendChild(el('pre', { class: 'script', tabindex: '0' }, [el('code', { text: run.script })]));
        body('script').appendChild(el('button', { type: 'button', class: 'copy', 'data-copy': run.script, 'aria-label': texts.copyWhat, text: texts.copy }));
      }
      var checks = run.checks || run.results;
      if (checks) checkList(checks);
      var outcome = document.getElementById('setup-outcome');
      // warn: could not be proven from here (UNVERIFIED), not a failure.
      if (run.state === 'done') outcome.textContent = checks && checks.every(function (c) { return c.status === 'ok' || c.status === 'warn'; }) ? texts.allGreen : texts.finishedWith;
      else outcome.textContent = '';
      if (run.state === 'failed' && run.error) showError(run.error);
    };
    var poll = function (url) {
      api('GET', url).then(function (r) {
        if (!r.ok) return showError(r.body.error || { code: 'HTTP ' + r.status });
        render(r.body);
        if (r.body.state === 'running') setTimeout(function () { poll(url); }, 1000);
      });
    };
    var start = function (kind) {
      clearError();
      var connection = document.getElementById('setup-connection').value;
      var base = kind === 'check' ? '/api/v1/check/runs' : '/api/v1/setup/runs';
      api('POST', base, { connection: connection }).then(function (r) {
        if (!r.ok) return showError(r.body.error || { code: 'HTTP ' + r.status });
        if (kind === 'check') STEPS.slice(0, 3).forEach(function (s) { mark(s, 'done'); });
        poll(base + '/' + encodeURIComponent(r.body.id));
      });
    };
    setupForm.addEventListener('submit', function (ev) {
      ev.preventDefault();
      start('setup');
    });
    setupForm.querySelector('[data-run="check"]').addEventListener('click', function () {
      start('check');
    });
  }
})();
