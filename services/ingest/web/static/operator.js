// callreel operator page: the little it needs beyond HTML.
"use strict";

// Ask before a retry: it may pay fal.ai for new videos.
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A call still in progress refreshes itself, unless a video is playing.
document.addEventListener("DOMContentLoaded", function () {
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (!(seconds > 0)) {
    return;
  }
  window.setInterval(function () {
    var playing = Array.prototype.some.call(document.querySelectorAll("video"), function (v) { return !v.paused; });
    if (!playing && document.visibilityState === "visible") {
      window.location.reload();
    }
  }, seconds * 1000);
});
