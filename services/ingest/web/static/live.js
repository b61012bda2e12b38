// callreel operator page: keep a page with calls in flight current (web/live.py sends the fragments, escaped).
"use strict";

(function () {
  var marker = document.getElementById("live");
  if (!marker) {
    return;
  }
  var url = marker.getAttribute("data-live-url");
  var seconds = parseInt(marker.getAttribute("data-live-seconds") || "3", 10);

  function listUrl() {
    var ids = Array.prototype.map.call(document.querySelectorAll("tr.call[data-call-id]"), function (row) {
      return "id=" + encodeURIComponent(row.getAttribute("data-call-id"));
    });
    return url + "?" + ids.join("&");
  }

  function put(answer) {
    var parts = answer.parts || {};
    Object.keys(parts).forEach(function (id) {
      var element = document.getElementById(id);
      if (element) {
        element.innerHTML = parts[id];
      }
    });
    var rows = answer.rows || {};
    Object.keys(rows).forEach(function (id) {
      var row = document.querySelector('tr.call[data-call-id="' + id + '"]');
      if (row) {
        var checked = row.querySelector("input[type=checkbox]");
        var was = checked && checked.checked;
        row.outerHTML = rows[id];
        var fresh = document.querySelector('tr.call[data-call-id="' + id + '"] input[type=checkbox]');
        if (fresh) {
          fresh.checked = !!was;
        }
      }
    });
    var status = document.getElementById("call-status");
    if (status && answer.status) {
      status.textContent = answer.status;
      status.className = "badge status-" + answer.status;
    }
  }

  function poll() {
    var target = document.querySelector("tr.call[data-call-id]") && !document.getElementById("live-facts") ? listUrl() : url;
    fetch(target, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (!answer) {
          window.setTimeout(poll, seconds * 4000);
          return;
        }
        put(answer);
        document.body.setAttribute("data-live", answer.in_flight ? "polling" : "settled");
        if (answer.in_flight) {
          window.setTimeout(poll, seconds * 1000);
        } else if (document.getElementById("live-facts")) {
          var note = document.getElementById("live-ended");
          if (note) {
            note.hidden = false;
          }
        }
      })
      .catch(function () { window.setTimeout(poll, seconds * 4000); });
  }

  document.body.setAttribute("data-live", "polling");
  window.setTimeout(poll, seconds * 1000);
})();
