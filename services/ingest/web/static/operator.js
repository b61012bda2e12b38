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

// A transcript line's time is a link to the video at that time (#t=…, a media fragment, which works
// without script); here it seeks the player on the page instead, and the line being spoken is marked.
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a[data-seek]") : null;
  var video = link && document.getElementById(link.getAttribute("data-video"));
  var at = link ? parseFloat(link.getAttribute("data-seek")) : NaN;
  if (!video || !(at >= 0)) {
    return;
  }
  event.preventDefault();
  video.currentTime = at;
  video.scrollIntoView({ block: "nearest" });
});

document.addEventListener("DOMContentLoaded", function () {
  var turns = document.querySelectorAll("#transcript li.turn");
  var video = document.getElementById("final-video");
  if (!video || !turns.length) {
    return;
  }
  video.addEventListener("timeupdate", function () {
    var now = video.currentTime;
    Array.prototype.forEach.call(turns, function (turn) {
      var speaking = now >= parseFloat(turn.getAttribute("data-start")) && now < parseFloat(turn.getAttribute("data-end"));
      turn.classList.toggle("now", speaking);
    });
  });
});
