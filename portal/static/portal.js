// keyplane portal: the only script. Pages work without it; it adds copying
// a new key or invite link to the clipboard.
document.addEventListener("click", function (e) {
  var btn = e.target.closest("[data-copy]");
  if (!btn) return;
  var input = document.getElementById(btn.getAttribute("data-copy"));
  var status = btn.closest(".secret").querySelector(".copied");
  input.select();
  function done(ok) {
    if (status) status.textContent = ok ? "Copied to the clipboard." : "Press Ctrl+C (or ⌘C) to copy the selected text.";
  }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(function () { done(true); }, function () { done(false); });
  } else {
    try { done(document.execCommand("copy")); } catch (err) { done(false); }
  }
});
