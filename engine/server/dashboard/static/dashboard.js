// glam's dashboard, progressively enhanced: every page works without this file.
// - Live view: follows the log through the server-sent event stream and, when events
//   arrive, fetches the same page's live block again and swaps it in (no reload).
// - Time travel: the slider and the position field move together.
(function () {
  "use strict";
  var body = document.body;

  function syncTravel() {
    var range = document.getElementById("at-range");
    var field = document.getElementById("at-field");
    if (!range || !field) { return; }
    range.addEventListener("input", function () { field.value = range.value; });
    range.addEventListener("change", function () { field.form.submit(); });
    field.addEventListener("input", function () {
      if (/^\d+$/.test(field.value)) { range.value = field.value; }
    });
  }

  function busy(live) {
    // Never swap the block under a keyboard or a half-typed reason.
    var active = document.activeElement;
    return active && live.contains(active) &&
      /^(INPUT|SELECT|TEXTAREA|BUTTON|SUMMARY)$/.test(active.tagName);
  }

  function follow() {
    if (body.dataset.live !== "1" || !window.EventSource || !window.fetch) { return; }
    var live = document.getElementById("live");
    var state = document.getElementById("live-state");
    var position = document.getElementById("position");
    var since = body.dataset.position || "0";
    var timer = null;
    var pending = false;
    var open = {};
    function refresh() {
      timer = null;
      if (busy(live)) { pending = true; return; }
      pending = false;
      // Keep the <details> the reader opened open across the swap.
      live.querySelectorAll("details[open]").forEach(function (d, i) { open[i] = true; });
      fetch(window.location.href, { headers: { "X-Glam-Fragment": "live" }, credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          live.innerHTML = html;
          live.querySelectorAll("details").forEach(function (d, i) { if (open[i]) { d.open = true; } });
          open = {};
          if (position) { position.textContent = body.dataset.position; }
        })
        .catch(function () { pending = true; });
    }
    live.addEventListener("focusout", function () {
      if (pending && !timer) { timer = setTimeout(refresh, 200); }
    });
    var source = new EventSource("/dashboard/stream?since=" + encodeURIComponent(since));
    source.onmessage = null;
    source.addEventListener("open", function () { if (state) { state.textContent = "live"; } });
    source.addEventListener("error", function () { if (state) { state.textContent = "live (reconnecting)"; } });
    function onEvent(e) {
      if (e.lastEventId) { body.dataset.position = e.lastEventId; }
      if (!timer) { timer = setTimeout(refresh, 250); }
    }
    // The stream names each event's type: listen to every type the page lists.
    var types = (body.dataset.types || "").split(" ").filter(Boolean);
    types.forEach(function (t) { source.addEventListener(t, onEvent); });
    source.onmessage = onEvent;
    window.addEventListener("pagehide", function () { source.close(); });
  }

  syncTravel();
  follow();
})();
