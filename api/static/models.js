// The model registry: versions with their metrics and curves, activation, downloads.
import { api, apiJson, authImage, download } from "./api.js";
import { $, el, pct, showError, when } from "./ui.js";

// The registry's field names are read tolerantly: a missing one shows as empty.

const listOf = (body) => (Array.isArray(body) ? body : body.items || body.models || []);
const versionOf = (m) => m.version || m.id || m.name;

// Validation accuracy on Fashion-MNIST and on real product photos (real-photos val), as the
// model's metadata records them; a model measured on only one shows the other empty.
function fmnistAccuracyOf(m) {
  const metrics = m.metrics || {};
  const value = metrics.fmnist_val_accuracy ?? metrics.val_accuracy;
  return typeof value === "number" ? pct(value) : "";
}

function photosAccuracyOf(m) {
  const value = (m.metrics || {}).photos_val_accuracy;
  return typeof value === "number" ? pct(value) : "";
}

export async function loadModels() {
  const body = $("models-body");
  try {
    const models = listOf(await apiJson("/v1/models"));
    $("models-state").textContent = models.length ? "" : "No models registered yet.";
    body.replaceChildren(...models.map((m) => {
      const version = versionOf(m);
      const active = Boolean(m.active || m.is_active || m.status === "active");
      return el("tr", { "data-version": version },
        el("td", {}, el("code", { text: version })),
        el("td", { text: m.arch || (m.meta && m.meta.arch) || "" }),
        el("td", { text: fmnistAccuracyOf(m) }),
        el("td", { text: photosAccuracyOf(m) }),
        el("td", { text: when(m.registered_at || m.created_at) }),
        el("td", {}, active ? el("span", { class: "badge succeeded", text: "active" }) : null),
        el("td", { class: "actions" },
          el("button", { type: "button", class: "secondary", text: "Details",
            onclick: () => showModel(version) }),
          active ? null : el("button", { type: "button", text: "Activate",
            onclick: () => activateModel(version) })));
    }));
  } catch (err) {
    body.replaceChildren();
    $("models-state").textContent = err.status === 404
      ? "This server has no model registry." : "";
    if (err.status !== 404) showError(err);
  }
}

async function activateModel(version) {
  try {
    await api(`/v1/models/${encodeURIComponent(version)}/activate`, { method: "POST" });
    await loadModels();
  } catch (err) {
    showError(err);
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

// Training curves drawn from a model's per-epoch history: train loss and validation
// accuracy (training accuracy for a final fit with no validation split), each scaled to its
// own range (an inline SVG; no plotting library).
function curvesChart(history) {
  const width = 480;
  const height = 220;
  const pad = 34;
  const hasVal = history.some((h) => typeof h.val_accuracy === "number");
  const series = [
    { key: "train_loss", name: "train loss", cls: "loss" },
    hasVal ? { key: "val_accuracy", name: "validation accuracy", cls: "acc" }
      : { key: "train_accuracy", name: "training accuracy", cls: "acc" },
  ].filter((s) => history.some((h) => typeof h[s.key] === "number"));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": `Training curves over ${history.length} epochs` });
  chart.append(svg("line", { x1: pad, y1: height - pad, x2: width - 8, y2: height - pad,
    class: "axis" }));
  const x = (i) => pad + (i * (width - pad - 8)) / Math.max(1, history.length - 1);
  for (const s of series) {
    const values = history.map((h) => h[s.key]).filter((v) => typeof v === "number");
    const low = Math.min(...values);
    const high = Math.max(...values);
    const y = (v) => height - pad - ((v - low) / (high - low || 1)) * (height - 2 * pad);
    const points = history.map((h, i) => (typeof h[s.key] === "number"
      ? `${x(i).toFixed(1)},${y(h[s.key]).toFixed(1)}` : null)).filter(Boolean);
    chart.append(svg("polyline", { points: points.join(" "), class: `series ${s.cls}` }));
    const last = values[values.length - 1];
    const label = svg("text", { x: pad, y: s.cls === "loss" ? 14 : 28, class: `legend ${s.cls}` });
    label.textContent = `${s.name}: ${low.toFixed(3)}–${high.toFixed(3)} (last ${last.toFixed(4)})`;
    chart.append(label);
  }
  const axis = svg("text", { x: width / 2, y: height - 8, class: "legend" });
  axis.textContent = `epoch 1–${history.length}`;
  chart.append(axis);
  return chart;
}

async function showModel(version) {
  const box = $("model-detail");
  box.hidden = false;
  box.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  try {
    const path = `/v1/models/${encodeURIComponent(version)}`;
    const model = await apiJson(path);
    const facts = [];
    for (const [name, value] of Object.entries(model.metrics || {})) {
      if (typeof value === "number") {
        facts.push(el("li", { text: `${name}: ${Number.isInteger(value) ? value : value.toFixed(4)}` }));
      }
    }
    for (const name of ["arch", "parameters", "source", "registered_at"]) {
      if (model[name] !== undefined) facts.push(el("li", { text: `${name}: ${model[name]}` }));
    }
    if (model.labels) facts.push(el("li", { text: `labels: ${model.labels.join(", ")}` }));
    const formats = model.formats || ["safetensors", "onnx"];
    box.replaceChildren(
      el("h3", { text: `Model ${version}` }),
      el("ul", { class: "facts" }, ...facts),
      el("div", { class: "row gap" }, ...formats.map((format) => el("button", {
        type: "button", class: "secondary", text: `Download .${format}`,
        onclick: () => download(`${path}/download?format=${format}`, `${version}.${format}`)
          .catch(showError),
      }))));
    const plots = el("div", { class: "artifacts" });
    box.append(plots);
    if (model.history && model.history.length > 1) plots.append(curvesChart(model.history));
    const source = String(model.source || "");
    const jobId = source.startsWith("training-job:") ? source.slice("training-job:".length) : null;
    if (jobId) {
      for (const name of ["curves.png", "confusion.png"]) {
        authImage(`/v1/training-jobs/${jobId}/artifacts/${name}`, `${name} of ${version}`)
          .then((img) => plots.append(img))
          .catch(() => {}); // the job (and its artifacts) expired: the SVG curves remain
      }
    }
  } catch (err) {
    box.hidden = true;
    showError(err);
  }
}
