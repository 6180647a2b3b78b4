// Keeps a page's live region current: on every event of its view, refetch the region.
(() => {
  const region = document.querySelector("[data-live]");
  if (!region || !window.EventSource) return;
  let timer = null;
  const refresh = async () => {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.ok) {
      region.innerHTML = await response.text();
      region.dataset.updated = String(Date.now());
    }
  };
  const source = new EventSource(region.dataset.stream);
  source.onmessage = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  };
  source.onopen = () => { region.dataset.streaming = "true"; };
  // Signing out here: the stream ends with the session, and the sign-out's own answer
  // leads to the sign-in page (a reload on its "revoked" would race it).
  document.querySelectorAll("form.signout").forEach((form) => {
    form.addEventListener("submit", () => source.close());
  });
  // The session ended (signed out elsewhere, expired, its key revoked): to the sign-in page.
  source.addEventListener("revoked", () => {
    source.close();
    window.location.reload();
  });
})();
