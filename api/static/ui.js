// Small DOM helpers shared by the page's modules, the error banner and the tabs.

export const $ = (id) => document.getElementById(id);

// -- the error banner ----------------------------------------------------------------------

// An ApiError (api.js) reads "message (code, HTTP status)"; anything else, its message.
export function showError(err) {
  if (err && err.name === "AbortError") return;
  const text = err && err.code
    ? `${err.message} (${err.code}${err.status ? `, HTTP ${err.status}` : ""})`
    : String(err && err.message ? err.message : err);
  $("error-text").textContent = text;
  $("error").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
}

// -- building elements and text ------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export const pct = (x) => `${(100 * x).toFixed(1)}%`;
export const shortId = (id) => String(id).slice(0, 8);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

export function fraction(progress) {
  if (!progress || !progress.total) return 0;
  return (progress.done + progress.failed + (progress.skipped || 0)) / progress.total;
}

export function progressText(job) {
  const p = job.progress;
  const extra = [p.failed ? `${p.failed} failed` : "", p.skipped ? `${p.skipped} skipped` : ""]
    .filter(Boolean).join(", ");
  return `${p.done + p.failed + (p.skipped || 0)} / ${p.total}${extra ? ` (${extra})` : ""}`;
}

export const isActive = (job) => job.status === "queued" || job.status === "running";

// -- tabs ----------------------------------------------------------------------------------

const tabs = () => [...document.querySelectorAll('[role="tab"]')];
const shownHandlers = new Map(); // tab id -> what to load when it is shown

export function onTabShown(tabId, handler) {
  shownHandlers.set(tabId, handler);
}

export function selectTab(tab) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  shownHandlers.get(tab.id)?.();
}

// Arrow keys move between tabs (the WAI-ARIA tabs pattern).
export function setUpTabs() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const all = tabs();
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = all[(all.indexOf(tab) + step + all.length) % all.length];
      next.focus();
      selectTab(next);
    });
  }
}
