// slipway's dashboard: a live log, and a running pipeline's page kept
// fresh. No framework; the server renders everything.
"use strict";

(function () {
  // A job's log: HTML pieces from an EventSource, appended as they come.
  const log = document.getElementById("log");
  if (log) {
    const state = document.getElementById("log-state");
    const es = new EventSource(log.dataset.src);
    let follow = true;
    window.addEventListener("scroll", function () {
      follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    }, { passive: true });
    es.onmessage = function (e) {
      log.insertAdjacentHTML("beforeend", e.data);
      log.dataset.bytes = e.lastEventId;
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    };
    es.addEventListener("skipped", function (e) {
      const note = document.createElement("div");
      note.className = "skipped";
      note.textContent = "… the first " + Math.round(Number(e.data) / 1048576) + " MiB are left out here; Raw has the whole log.";
      log.prepend(note);
    });
    es.addEventListener("end", function () {
      es.close();
      log.dataset.ended = "true";
      if (state && state.textContent === "live") {
        state.textContent = "finished";
        // The steps and the outcome are known now.
        setTimeout(refresh, 300);
      }
    });
  }

  // A running pipeline's page is fetched again every few seconds and its
  // live part replaced, unless a form is in use.
  const live = document.getElementById("live");
  if (live && live.dataset.refresh) {
    const every = Number(live.dataset.refresh);
    const tick = function () {
      const el = document.activeElement;
      if (el && el.form) return setTimeout(tick, every);
      swap(["live"]).then(function (doc) {
        const again = doc && doc.getElementById("live");
        if (!doc || (again && again.dataset.refresh)) setTimeout(tick, every);
      });
    };
    setTimeout(tick, every);
  }

  function refresh() { swap(["job-head", "steps"]); }

  // swap fetches the page again and puts the fresh copies of the
  // elements with these IDs in place of the old ones (or, for one that
  // was not there, before the log).
  function swap(ids) {
    return fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return null;
        const doc = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          const fresh = doc.getElementById(id);
          const old = document.getElementById(id);
          if (fresh && old) old.replaceWith(fresh);
          else if (fresh) {
            const card = document.querySelector(".log-card");
            if (card) card.before(fresh);
          }
        });
        return doc;
      })
      .catch(function () { return null; });
  }
})();
