// leadflow console: live fragments over Server-Sent Events, and focus
// after in-place (htmx) updates. No inline script anywhere (the pages are
// served with script-src 'self').
(function () {
  'use strict';

  // An element with data-sse-src gets its content from the named event of
  // that stream; the server sends "end" when there is nothing more.
  function connect(el) {
    if (el.dataset.sseConnected) return;
    el.dataset.sseConnected = '1';
    var state = el.dataset.sseState ? document.getElementById(el.dataset.sseState) : null;
    var say = function (text) { if (state) state.textContent = text; };
    var es = new EventSource(el.dataset.sseSrc);
    es.addEventListener(el.dataset.sseEvent || 'message', function (e) {
      el.innerHTML = e.data;
      say('Live: updates every few seconds');
      el.dispatchEvent(new CustomEvent('console:updated', { bubbles: true }));
    });
    es.addEventListener('end', function (e) {
      es.close();
      if (e.data === 'signed-out') {
        say('Live updates stopped: your sign-in ended. Reload the page to sign in again.');
      }
    });
    es.addEventListener('error', function () {
      say(es.readyState === EventSource.CLOSED
        ? 'Live updates stopped. Reload the page.'
        : 'Connection lost; reconnecting…');
    });
  }

  function scan() {
    document.querySelectorAll('[data-sse-src]').forEach(connect);
  }

  // After an in-place update, move the focus to its notice so keyboard and
  // screen-reader users hear what happened.
  function focusNotice() {
    var el = document.querySelector('[data-focus]');
    if (el) {
      el.removeAttribute('data-focus');
      el.focus();
    }
  }

  document.addEventListener('DOMContentLoaded', scan);
  document.addEventListener('htmx:after:swap', function () { scan(); });
  document.addEventListener('htmx:after:settle', focusNotice);
})();
