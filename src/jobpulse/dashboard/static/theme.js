// Before the first paint: the theme chosen with the header's toggle, if any (else the
// system's, by prefers-color-scheme in dashboard.css).
(() => {
  try {
    const chosen = window.localStorage.getItem("jobpulse-theme");
    if (chosen === "light" || chosen === "dark") document.documentElement.dataset.theme = chosen;
  } catch (_) {
    // storage refused (private mode): the system's theme
  }
})();
