// The demo script: proves scripts load through the profiler, and reports the image's size.
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("script-status");
  var image = document.getElementById("large-image");
  if (!status) { return; }
  status.textContent = "The demo script ran.";
  if (image) {
    var report = function () {
      status.textContent = "The demo script ran; the image is " +
        image.naturalWidth + "\u00d7" + image.naturalHeight + " pixels.";
    };
    if (image.complete) { report(); } else { image.addEventListener("load", report); }
  }
});
