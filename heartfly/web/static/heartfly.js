// Heartfly: refresh the page's live regions in place, and filter the check list as you type.
// No data ever goes through innerHTML from anywhere but this server's own escaped pages.
(function () {
  "use strict";
  var REFRESH_MS = 10000;
  // A refresh not answered by the next one's time is said ("no answer yet"), and given up after a
  // minute: a server that takes the request and answers nothing (stopped, its loop blocked, a
  // connection gone dead) left the page frozen, "updated" at the last answer, and every later
  // refresh waiting behind it. A slow answer that comes still updates the page.
  var SLOW_MS = REFRESH_MS, GIVE_UP_MS = 6 * REFRESH_MS;
  var status = document.getElementById("live-status");
  var timer = null;
  var current = null;  // the AbortController of the refresh under way

  function busyHere(el) {
    // Leave a region alone while someone reads an opened message or fills in a form field in it.
    // Not for a focused link: one opened in another tab keeps the focus, and held the list still for good.
    var active = document.activeElement;
    return el.querySelector("details[open]") || el.contains(active) && active.matches("input, select, textarea, button");
  }

  function sameIn(region, el) {
    // The element in a fresh copy of a region that stands where `el` stood: by id, else a link by its href.
    if (el.id) { return region.querySelector("#" + CSS.escape(el.id)); }
    var href = el.getAttribute("href");
    return href === null ? null : region.querySelector(el.localName + '[href="' + CSS.escape(href) + '"]');
  }

  function refresh(url, force) {
    if (current) {
      if (!force) { return; }
      current.abort();  // a newer view (a chip, a search) replaces the one still on its way
    }
    var controller = current = new AbortController(), timedOut = false;
    var slow = setTimeout(function () {
      if (status) { status.textContent = "no answer yet"; status.classList.add("stale"); }
    }, SLOW_MS);
    var answer = setTimeout(function () { timedOut = true; controller.abort(); }, GIVE_UP_MS);
    fetch(url || location.href, {
      credentials: "same-origin", headers: { "Accept": "text/html" }, signal: controller.signal
    })
      .then(function (resp) {
        if (resp.redirected && /\/login$/.test(new URL(resp.url).pathname)) { location.assign(resp.url); return null; }
        if (!resp.ok) { throw new Error(resp.status); }
        return resp.text();
      })
      .then(function (html) {
        if (html === null || controller.signal.aborted) { return; }  // (given up meanwhile)
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (!fresh || !force && busyHere(el)) { return; }
          var active = document.activeElement, node = document.importNode(fresh, true);
          el.replaceWith(node);
          // A focused link (a keyboard user on the list) went with the old region: it is put back on its new copy.
          var again = el.contains(active) && active !== el ? sameIn(node, active) : null;
          if (again) { again.focus({ preventScroll: true }); }
        });
        if (status) { status.textContent = "updated " + new Date().toLocaleTimeString(); status.classList.remove("stale"); }
      })
      .catch(function (err) {
        if (controller.signal.aborted && !timedOut) { return; }  // replaced by a newer refresh
        // A fetch that got no answer is offline; an answer is not (a 404: the check left the config).
        var said = timedOut ? "no answer" : err instanceof TypeError ? "offline"
          : err.message === "404" ? "no such check now" : "error " + err.message;
        if (status) { status.textContent = said + ": retrying"; status.classList.add("stale"); }
      })
      .finally(function () {
        clearTimeout(slow);
        clearTimeout(answer);
        if (current === controller) { current = null; }
      });
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(function () { if (!document.hidden) { refresh(); } }, REFRESH_MS);
  }

  function go(url) {
    history.replaceState(null, "", url);
    refresh(url, true);
    schedule();
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[data-nav]");
    if (!a || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) { return; }
    ev.preventDefault();
    var q = document.getElementById("q");
    var url = new URL(a.href);
    if (q && q.value && !url.searchParams.has("q") && a.classList.contains("chip")) { url.searchParams.set("q", q.value); }
    go(url.toString());
  });

  var q = document.getElementById("q");
  if (q) {
    var pending = null;
    q.addEventListener("input", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        var url = new URL(location.href);
        if (q.value) { url.searchParams.set("q", q.value); } else { url.searchParams.delete("q"); }
        url.searchParams.delete("page");
        go(url.toString());
      }, 200);
    });
    q.form.addEventListener("submit", function (ev) { ev.preventDefault(); });
  }

  // Copy buttons: <button class="copy" data-copy="TEXT">. The Clipboard API where the page is a
  // secure context (https, localhost); else a selected, off-screen textarea and execCommand.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) { return navigator.clipboard.writeText(text); }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button[data-copy]");
    if (!button) { return; }
    copyText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
      button.classList.add("copied");
      button.setAttribute("data-state", "copied");
    }, function () {
      button.textContent = "Select and copy";
      button.setAttribute("data-state", "failed");
    });
    clearTimeout(button._reset);
    button._reset = setTimeout(function () {
      button.textContent = "Copy";
      button.classList.remove("copied");
      button.removeAttribute("data-state");
    }, 2000);
  });

  // Times in this browser's own zone (a cookie the server reads), or back in the server's.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-tz]");
    if (!link) { return; }
    event.preventDefault();
    if (link.getAttribute("data-tz") === "browser") {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      document.cookie = "hf_tz=" + zone + "; path=/; max-age=31536000; samesite=lax";  // IANA names need no escaping
    } else {
      document.cookie = "hf_tz=; path=/; max-age=0; samesite=lax";
    }
    location.reload();
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  schedule();
})();
