// Tagging: one photo (answered at once), many photos or one archive (a job).
import { apiJson } from "./api.js";
import { follow, jobs, openResults, resultCard, thumbnails } from "./jobs.js";
import { $, clearError, el, selectTab, shortId, showError } from "./ui.js";
import { zipThumbnails } from "./zip.js";

const ARCHIVE_NAME = /\.(zip|tar|tgz|tar\.gz)$/i;

function options() {
  const form = new FormData();
  form.append("top_k", $("opt-top-k").value || "3");
  if ($("opt-review").value !== "") form.append("review_threshold", $("opt-review").value);
  return form;
}

async function submitFiles(fileList) {
  clearError();
  const files = [...fileList];
  if (!files.length) return;
  const archives = files.filter((f) => ARCHIVE_NAME.test(f.name));
  if (archives.length && files.length > 1) {
    showError(new Error("send one archive on its own, or photos without an archive"));
    return;
  }
  const state = $("submit-state");
  try {
    if (files.length === 1 && !archives.length) {
      state.textContent = `Tagging ${files[0].name}…`;
      await classifyOne(files[0]);
      state.textContent = "";
      return;
    }
    const form = options();
    if (archives.length) form.append("archive", archives[0], archives[0].name);
    else for (const file of files) form.append("files", file, file.name);
    state.textContent = `Uploading ${archives.length ? archives[0].name : `${files.length} photos`}…`;
    const job = await apiJson("/v1/jobs", { method: "POST", body: form });
    if (!archives.length) thumbnails.set(job.id, files.map((f) => URL.createObjectURL(f)));
    else if (/\.zip$/i.test(archives[0].name)) {
      thumbnails.set(job.id, await zipThumbnails(archives[0]).catch(() => new Map()));
    }
    state.textContent = `Job ${shortId(job.id)} queued: ${job.progress.total} items.`;
    jobs.upsert(job);
    selectTab($("tab-jobs"));
    openResults(job.id);
  } catch (err) {
    state.textContent = "";
    showError(err);
  }
}

async function classifyOne(file) {
  const form = options();
  form.append("file", file, file.name);
  const wait = Math.min(30, Math.max(0, Number($("opt-wait").value) || 0));
  const body = await apiJson(`/v1/classify?wait=${wait}`, { method: "POST", body: form });
  const box = $("single-result");
  box.replaceChildren();
  box.hidden = false;
  const image = el("img", { src: URL.createObjectURL(file), alt: file.name, class: "thumb" });
  if (!body.result) {
    jobs.upsert(body);
    box.append(image, el("p", { text: `Still working on it: job ${shortId(body.id)} (see Jobs).` }));
    follow(body.id);
    return;
  }
  box.append(image, resultCard(body.result, null, true));
}

export function setUpUpload() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (event) => {
    submitFiles(event.target.files);
    event.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    submitFiles(event.dataTransfer.files);
  });
}
