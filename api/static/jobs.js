// The caller's jobs with live progress, and a job's results as a grid.
import { apiJson, download, streamEvents } from "./api.js";
import {
  $, el, fraction, isActive, pct, progressText, shortId, showError, when,
} from "./ui.js";

const MAX_STREAMS = 3; // browsers allow ~6 connections per host: keep some for other calls
const RESULTS_PAGE = 200;
const POLL_MS = 4000;

// job id -> the thumbnails of its items: object URLs by item index (photos uploaded from this
// page) or by file name (images read out of an uploaded .zip); none for .tar archives.
export const thumbnails = new Map();

// -- jobs: the list, live progress ---------------------------------------------------------

const streams = new Map(); // job id -> AbortController of its event stream

export const jobs = {
  byId: new Map(),
  nextCursor: null,

  clear() {
    this.byId.clear();
    this.nextCursor = null;
    for (const controller of streams.values()) controller.abort();
    streams.clear();
    $("jobs-body").replaceChildren();
  },

  upsert(job) {
    this.byId.set(job.id, job);
    const row = document.querySelector(`tr[data-job="${job.id}"]`);
    const fresh = jobRow(job);
    if (row) row.replaceWith(fresh);
    else {
      // newest first: a job not on the page yet goes where its creation time puts it
      const later = [...$("jobs-body").children].find(
        (r) => (this.byId.get(r.dataset.job)?.created_at || "") < job.created_at);
      $("jobs-body").insertBefore(fresh, later || null);
    }
    if (results.jobId === job.id) results.update(job);
  },
};

function jobRow(job) {
  const bar = el("progress", { max: 1, value: fraction(job.progress),
    "aria-label": `Progress of job ${shortId(job.id)}` });
  const actions = el("td", { class: "actions" },
    el("button", { type: "button", class: "secondary", text: "Results",
      onclick: () => openResults(job.id) }),
    isActive(job) ? el("button", { type: "button", class: "secondary", text: "Cancel",
      onclick: () => cancelJob(job.id) }) : null);
  return el("tr", { "data-job": job.id, "data-status": job.status },
    el("td", {}, el("code", { title: job.id, text: shortId(job.id) })),
    el("td", { text: job.source }),
    el("td", {}, el("span", { class: `badge ${job.status}`, text: job.status })),
    el("td", { class: "progress-cell" }, bar, el("span", { class: "muted", text: progressText(job) })),
    el("td", { text: when(job.created_at) }),
    actions);
}

export async function loadJobs(more = false) {
  try {
    const cursor = more && jobs.nextCursor ? `&cursor=${encodeURIComponent(jobs.nextCursor)}` : "";
    const page = await apiJson(`/v1/jobs?limit=20${cursor}`);
    for (const job of page.items) {
      jobs.upsert(job);
      if (isActive(job)) follow(job.id);
    }
    jobs.nextCursor = page.next_cursor;
    $("jobs-more").hidden = !page.next_cursor;
  } catch (err) {
    showError(err);
  }
}

// Live progress of one job: its event stream while a slot is free, else the periodic poll.
export function follow(jobId) {
  if (streams.has(jobId) || streams.size >= MAX_STREAMS) return;
  const controller = new AbortController();
  streams.set(jobId, controller);
  streamEvents(`/v1/jobs/${jobId}/events`, (_name, job) => jobs.upsert(job), controller.signal)
    .catch(showError)
    .finally(() => {
      streams.delete(jobId);
      refreshJob(jobId); // the final state, also when the stream broke off
    });
}

async function refreshJob(jobId) {
  try {
    const job = await apiJson(`/v1/jobs/${jobId}`);
    jobs.upsert(job);
    if (isActive(job)) setTimeout(() => follow(jobId), 1000);
  } catch (err) {
    if (err.status !== 404) showError(err);
  }
}

async function cancelJob(jobId) {
  try {
    jobs.upsert(await apiJson(`/v1/jobs/${jobId}`, { method: "DELETE" }));
  } catch (err) {
    showError(err);
  }
}

function pollUnfollowed() {
  for (const job of jobs.byId.values()) {
    if (isActive(job) && !streams.has(job.id)) {
      if (streams.size < MAX_STREAMS) follow(job.id);
      else refreshJob(job.id);
    }
  }
}

// -- results: the grid ---------------------------------------------------------------------

const results = {
  jobId: null,
  nextCursor: null,
  loadedFinal: false,

  update(job) {
    $("results-progress").value = fraction(job.progress);
    $("results-state").textContent = `${job.status}: ${progressText(job)}`;
    $("results").dataset.status = job.status;
    if (!isActive(job) && !this.loadedFinal) {
      this.loadedFinal = true;
      this.load(true);
    }
  },

  async load(fromStart) {
    const jobId = this.jobId;
    if (fromStart) {
      this.nextCursor = 0;
      $("grid").replaceChildren();
    }
    try {
      const page = await apiJson(
        `/v1/jobs/${jobId}/results?cursor=${this.nextCursor}&limit=${RESULTS_PAGE}`);
      if (jobId !== this.jobId) return; // another job was opened meanwhile
      const urls = thumbnails.get(jobId);
      const thumbnail = (item) => (urls instanceof Map ? urls.get(item.filename) : urls?.[item.index]);
      $("grid").append(...page.items.map((item) => resultCard(item, thumbnail(item))));
      reviewFirst($("grid"));
      this.nextCursor = page.next_cursor;
      $("results-more").hidden = page.next_cursor === null;
      applyFilter();
    } catch (err) {
      showError(err);
    }
  },
};

export async function openResults(jobId) {
  results.jobId = jobId;
  results.loadedFinal = false;
  $("results").hidden = false;
  $("results-title").textContent = `Results of job ${shortId(jobId)}`;
  $("grid").replaceChildren();
  const job = jobs.byId.get(jobId) || await apiJson(`/v1/jobs/${jobId}`).catch(showError);
  if (!job) return;
  results.update(job);
  if (isActive(job)) follow(jobId);
}

export function resultCard(item, thumbnailUrl, single = false) {
  const ok = item.status === "ok";
  const picture = thumbnailUrl
    ? el("img", { src: thumbnailUrl, alt: item.filename || `item ${item.index}`, class: "thumb" })
    : el("div", { class: "thumb placeholder", "aria-hidden": "true", text: "no preview" });
  const card = el(single ? "div" : "li", {
    class: `card ${item.status}${item.needs_review ? " review" : ""}`,
    "data-index": item.index, "data-label": item.label || "", "data-status": item.status,
    "data-review": String(Boolean(item.needs_review)),
  },
  single ? null : picture,
  el("div", { class: "name", title: item.filename || item.item_id || "",
    text: item.item_id || item.filename || `#${item.index}` }),
  ok ? el("div", { class: "label", text: item.label }) : null,
  ok ? el("div", { class: "confidence", text: pct(item.confidence) }) : null,
  item.needs_review ? el("span", { class: "badge review", text: "needs review" }) : null,
  ok ? null : el("div", { class: "item-error", text: item.error || item.status }));
  if (single && item.top_k && item.top_k.length) {
    card.append(el("ol", { class: "topk" },
      ...item.top_k.map((s) => el("li", { text: `${s.label} ${pct(s.score)}` }))));
  }
  return card;
}

// The items a person must look at come first; within each group, in index order.
function reviewFirst(grid) {
  const rank = (card) => (card.dataset.review === "true" ? 0 : 1);
  const cards = [...grid.children];
  cards.sort((a, b) => rank(a) - rank(b) || Number(a.dataset.index) - Number(b.dataset.index));
  grid.replaceChildren(...cards);
}

function applyFilter() {
  const filter = $("results-filter").value;
  let shown = 0;
  for (const card of $("grid").children) {
    const visible = filter === "all"
      || (filter === "review" && card.dataset.review === "true")
      || (filter === "error" && card.dataset.status !== "ok");
    card.hidden = !visible;
    shown += visible ? 1 : 0;
  }
  $("grid").dataset.shown = String(shown);
}

export function setUpJobs() {
  $("jobs-refresh").addEventListener("click", () => loadJobs());
  $("jobs-more").addEventListener("click", () => loadJobs(true));
  $("results-more").addEventListener("click", () => results.load(false));
  $("results-filter").addEventListener("change", applyFilter);
  $("download-csv").addEventListener("click", () => {
    download(`/v1/jobs/${results.jobId}/results?format=csv`, `${results.jobId}.csv`)
      .catch(showError);
  });
  setInterval(pollUnfollowed, POLL_MS);
}
