// Training (any key; activating needs an operator's): queue a run, follow it, show its
// plots; upload a dataset.
import { apiJson, authImage, streamEvents } from "./api.js";
import { $, clearError, isActive, pct, shortId, showError } from "./ui.js";

let trainingJob = null;
let trainingStream = null;

function trainingRequest(form) {
  const data = new FormData(form);
  // an empty field is left out, so the recipe (or the server's default) supplies it
  const text = (name) => data.get(name) || null;
  const number = (name) => (data.get(name) === "" ? null : Number(data.get(name)));
  const request = {
    dataset: data.get("dataset"), recipe: data.get("recipe"), arch: text("arch"),
    epochs: number("epochs"), batch_size: number("batch_size"), lr: number("lr"),
    seed: number("seed"), max_train_items: number("max_train_items"),
    init_from: text("init_from"),
    augment: data.get("augment") === "" ? null : data.get("augment") === "on",
    activate: text("activate"),
  };
  return Object.fromEntries(Object.entries(request).filter(([, v]) => v !== null));
}

function describeTraining(job) {
  const p = job.progress || {};
  const parts = [job.status];
  if (p.epochs) parts.push(`epoch ${p.epoch}/${p.epochs}${p.steps ? `, step ${p.step}/${p.steps}` : ""}`);
  if (typeof job.loss === "number") parts.push(`loss ${job.loss.toFixed(4)}`);
  if (typeof job.val_accuracy === "number") parts.push(`val accuracy ${pct(job.val_accuracy)}`);
  if (job.eta_s) parts.push(`about ${Math.round(job.eta_s)} s left`);
  if (job.model_version) parts.push(`model ${job.model_version}`);
  if (job.activation) parts.push(job.activation);
  if (job.error) parts.push(`error: ${job.error}`);
  const fractionDone = job.status === "succeeded" ? 1 : (p.fraction || 0);
  return { text: parts.join(" · "), fraction: Math.min(1, fractionDone) };
}

function showTraining(job) {
  trainingJob = job;
  $("training").hidden = false;
  $("training-title").textContent = `Training job ${shortId(job.id)}`;
  const { text, fraction: value } = describeTraining(job);
  $("training-state").textContent = text;
  $("training-progress").value = value;
  $("training-cancel").hidden = !isActive(job);
  const plots = $("training-artifacts");
  const shown = plots.dataset.job === job.id ? plots.dataset.names || "" : "";
  const artifacts = (job.artifacts || []).filter((n) => n.endsWith(".png"));
  if (artifacts.join(",") !== shown) { // new plots (each epoch redraws curves.png)
    plots.dataset.job = job.id;
    plots.dataset.names = artifacts.join(",");
    Promise.all(artifacts.map((name) => authImage(
      `/v1/training-jobs/${job.id}/artifacts/${name}`, `${name} of training job ${shortId(job.id)}`)))
      .then((images) => plots.replaceChildren(...images))
      .catch(showError);
  }
}

async function followTraining(jobId) {
  if (trainingStream) trainingStream.abort();
  const controller = new AbortController();
  trainingStream = controller;
  try {
    await streamEvents(`/v1/training-jobs/${jobId}/events`, (_n, job) => showTraining(job),
      controller.signal);
  } catch (err) {
    if (err.name === "AbortError") return;
    // no event stream: poll instead
    while (trainingStream === controller) {
      const job = await apiJson(`/v1/training-jobs/${jobId}`).catch(showError);
      if (!job) return;
      showTraining(job);
      if (!isActive(job)) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    return;
  }
  const job = await apiJson(`/v1/training-jobs/${jobId}`).catch(showError);
  if (job) showTraining(job);
}

export function setUpTraining() {
  $("train-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const job = await apiJson("/v1/training-jobs", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(trainingRequest(event.target)),
      });
      showTraining(job);
      followTraining(job.id);
    } catch (err) {
      showError(err);
    }
  });
  $("training-cancel").addEventListener("click", async () => {
    if (!trainingJob) return;
    try {
      const job = await apiJson(`/v1/training-jobs/${trainingJob.id}`, { method: "DELETE" });
      if (job && job.id) showTraining(job);
    } catch (err) {
      showError(err);
    }
  });
  $("dataset-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const file = $("dataset-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("archive", file, file.name);
    $("dataset-state").textContent = `Uploading ${file.name}…`;
    try {
      const dataset = await apiJson("/v1/datasets", { method: "POST", body: form });
      const id = dataset.id || dataset.dataset_id;
      $("dataset-state").textContent = `Dataset ${id} stored: use it as the training dataset.`;
      document.querySelector('#train-form [name="dataset"]').value = id;
    } catch (err) {
      $("dataset-state").textContent = "";
      showError(err);
    }
  });
}
