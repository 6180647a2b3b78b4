// The dashboard's one script. It keeps a page's live region current without losing the
// reader's place (the region is morphed with idiomorph: focus, selection and scroll stay),
// shows times in the browser's zone with relative times and ticking durations, asks before
// an action, remembers the theme, and folds the filters away on phones.
(() => {
  const root = document.documentElement;
  const narrow = window.matchMedia("(max-width: 40em)");

  // Theme: the system's (prefers-color-scheme) until the toggle picks one, then remembered.
  const THEME = "jobpulse-theme";
  const system = window.matchMedia("(prefers-color-scheme: dark)");
  const isDark = () => (root.dataset.theme ? root.dataset.theme === "dark" : system.matches);
  const toggles = document.querySelectorAll("[data-theme-toggle]");
  const showTheme = () => toggles.forEach((t) => t.setAttribute("aria-pressed", String(isDark())));
  toggles.forEach((toggle) => toggle.addEventListener("click", () => {
    root.dataset.theme = isDark() ? "light" : "dark";
    try { window.localStorage.setItem(THEME, root.dataset.theme); } catch (_) { /* not kept */ }
    showTheme();
  }));
  system.addEventListener("change", showTheme);
  showTheme();

  // Times: the browser's zone, named; "3 min ago"; durations of running jobs that tick.
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const stamp = new Intl.DateTimeFormat("sv-SE", {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const zoneName = (moment) => new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
    .formatToParts(moment).find((part) => part.type === "timeZoneName")?.value || zone;
  const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto", style: "short" });
  const UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const ago = (moment) => {
    const seconds = Math.round((moment.getTime() - Date.now()) / 1000);
    const [unit, size] = UNITS.find(([, s]) => Math.abs(seconds) >= s) || UNITS[3];
    return relative.format(Math.trunc(seconds / size), unit);
  };
  const span = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  };
  const local = (moment) => `${stamp.format(moment)} ${zoneName(moment)}`;
  const localize = (scope) => {
    scope.querySelectorAll("time[datetime]").forEach((time) => {
      const moment = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) return;
      const text = time.dataset.style === "relative"
        ? ago(moment) : `${local(moment)}, ${ago(moment)}`;
      if (time.textContent !== text) time.textContent = text; // a selection in it stays
      time.title = `${local(moment)} (${moment.toISOString()})`;
    });
    scope.querySelectorAll("[data-running-since]").forEach((element) => {
      const since = new Date(element.dataset.runningSince);
      const text = `${span(Date.now() - since.getTime())}, running`;
      if (element.textContent !== text) element.textContent = text;
    });
  };
  document.querySelectorAll("[data-zone]").forEach((note) => {
    note.textContent = `Times are in your time zone, ${zone} (${zoneName(new Date())}).`;
  });
  localize(document);
  window.setInterval(() => localize(document), 1000);

  // Date filters: typed in the browser's zone, sent with its offset (ISO 8601).
  const offset = (moment) => {
    const minutes = -moment.getTimezoneOffset();
    const sign = minutes < 0 ? "-" : "+";
    const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
    return `${sign}${pad(minutes / 60)}:${pad(minutes % 60)}`;
  };
  const PLAIN = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?))?$/;
  document.querySelectorAll("input[data-local-time]").forEach((input) => {
    const moment = new Date(input.value);
    if (input.value && !PLAIN.test(input.value) && !Number.isNaN(moment.getTime())) {
      input.value = stamp.format(moment).slice(0, 16); // as sent: shown in this zone again
    }
    input.form?.addEventListener("submit", () => {
      const match = PLAIN.exec(input.value.trim());
      if (!match) return; // empty, or already with an offset: as typed
      const time = match[2] || "00:00";
      const moment = new Date(`${match[1]}T${time}`); // read in the browser's zone
      if (!Number.isNaN(moment.getTime())) input.value = `${match[1]}T${time}${offset(moment)}`;
    });
  });

  // Filters fold away on phones (their summary says how many are set).
  document.querySelectorAll("details[data-collapse-narrow]").forEach((box) => {
    if (narrow.matches) box.open = false;
  });

  // Actions ask first.
  document.addEventListener("submit", (event) => {
    const question = event.target instanceof HTMLFormElement && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // The live region: on every event of its view, fetch it again and morph it in place.
  const region = document.querySelector("[data-live]");
  if (!region || !window.EventSource) return;
  let timer = null;
  const refresh = async () => {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.redirected) {
      window.location.reload(); // the session ended: the sign-in form
      return;
    }
    if (!response.ok) return;
    const html = await response.text();
    if (window.Idiomorph) window.Idiomorph.morph(region, html, { morphStyle: "innerHTML" });
    else region.innerHTML = html;
    localize(region);
    region.dataset.updated = String(Date.now());
  };
  const soon = (ms = 250) => {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  };
  const source = new EventSource(region.dataset.stream);
  source.onmessage = () => soon();
  source.addEventListener("heartbeat", () => soon());
  source.addEventListener("usage", () => soon()); // LLM calls recorded (no history event)
  source.onopen = () => { region.dataset.streaming = "true"; };
  // A callback re-sent: its attempt is no event of the job; look again as it is made.
  const params = new URLSearchParams(window.location.search);
  if (params.get("action") === "resend" && params.get("result") === "ok") {
    [500, 1500, 3000, 6000, 12000].forEach((ms) => setTimeout(refresh, ms));
  }
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
