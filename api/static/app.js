// fashion-tagger web page: vanilla JS modules, no build step, no external resources.
//   api.js       talking to the API (the key as a header; event streams over fetch)
//   ui.js        DOM helpers, the error banner, the tabs
//   tag.js       dropping photos or an archive     zip.js  thumbnails out of a .zip
//   jobs.js      the jobs list and a job's results grid
//   models.js    the model registry                training.js  training runs
import { KEY_STORAGE, apiKey } from "./api.js";
import { jobs, loadJobs, setUpJobs } from "./jobs.js";
import { loadModels } from "./models.js";
import { setUpUpload } from "./tag.js";
import { setUpTraining } from "./training.js";
import { $, clearError, onTabShown, setUpTabs } from "./ui.js";

// -- the API key ---------------------------------------------------------------------------

function setUpKey() {
  const input = $("api-key");
  input.value = apiKey();
  const describe = () => {
    $("key-state").textContent = apiKey() ? "key saved in this browser" : "no key saved";
  };
  describe();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, input.value.trim());
    describe();
    clearError();
    jobs.clear(); // another key may be another tenant: nothing of the last one stays shown
    $("results").hidden = true;
    loadJobs();
  });
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    input.value = "";
    describe();
  });
}

// Modules run after the document is parsed: the elements are there.
$("error-close").addEventListener("click", clearError);
onTabShown("tab-jobs", () => loadJobs());
onTabShown("tab-models", loadModels);
setUpTabs();
setUpKey();
setUpUpload();
setUpJobs();
setUpTraining();
