"""The real-photos section of BENCHMARKS.md (issue 2/5): accuracy and calibration via
`fashion-tagger predict`, the own-photos learning curve and real-photo throughput through the
service; read from benchmarks/results/photos-*.json."""

from __future__ import annotations

from benchmarks.report import load, measured, pct, target


def photos_section() -> list[str]:
    lines = photos_accuracy_lines() + photos_curve_lines() + photos_throughput_lines()
    return ["## Real product photos (issue 2/5)", "", *lines] if lines else []


def photos_accuracy_lines() -> list[str]:
    r = load("photos-accuracy")
    if r is None:
        return []
    v, fm, m = r["photos_val"], r["fmnist_test"], r["model"]
    before = r["before_shipped_fmnist_model_alone"]
    review = v.get("review") or {}
    held = v["calibration_held_out_2fold"]
    lines = [f"Command: `{r['command']}` ({measured(r)}), which runs `{r['predict_command']}`"
             " and the same `predict` on the 10,000 Fashion-MNIST test PNGs. By default"
             " `predict` serves the shipped pair: each image that looks like Fashion-MNIST goes"
             " to `core/models/default.safetensors`, every other image (a photo) to"
             f" `core/models/photo.safetensors` (preprocessing `{m['preprocessing']}`, tta"
             f" `{m['tta']}`, trained on photo sources {m['photo_sources']} only). How it was"
             " chosen: [docs/PHOTOS.md](docs/PHOTOS.md).", "",
             "| figure | value | target |", "|---|---|---|",
             f"| real-photos val accuracy ({v['count']} photos) | **{pct(v['accuracy'])}** |"
             f" >= 85%: {target(v['accuracy'] >= 0.85)} |",
             f"| lowest class | {pct(v['min_class'])} | >= 60%: {target(v['min_class'] >= 0.6)} |",
             f"| Fashion-MNIST test ({fm['images']} PNGs, routes {fm['routes']}) |"
             f" **{pct(fm['accuracy'])}** | >= 94.5%: {target(fm['accuracy'] >= 0.945)} |"]
    if review.get("unflagged_accuracy") is not None:
        ok = review["unflagged_accuracy"] >= 0.95 and review["unflagged_share"] >= 0.6
        lines.append(f"| at the default review threshold ({review['review_below']}): unflagged"
                     f" share / their accuracy | {pct(review['unflagged_share'])} /"
                     f" {pct(review['unflagged_accuracy'])} | >= 60% / >= 95%: {target(ok)} |")
    if held.get("accuracy_unflagged") is not None:
        lines.append(f"| the same, held out (2-fold on val: fitted on one half, measured on"
                     f" the other) | {pct(held['coverage'])} /"
                     f" {pct(held['accuracy_unflagged'])} | an honest estimate |")
    lines += [f"| before: the shipped Fashion-MNIST model alone on the photos |"
              f" {pct(before['accuracy'])} | |", ""]
    lines += ["| class | accuracy |", "|---|---|"]
    lines += [f"| {k} | {pct(x)} |" for k, x in v["per_class"].items()]
    lines += ["", "| source | photos | accuracy |", "|---|---|---|"]
    lines += [f"| {k} | {v['per_source_count'][k]} | {pct(x)} |"
              for k, x in v["per_source"].items()]
    lines += ["", f"Confusion matrix: [{r['confusion_png']}]({r['confusion_png']});"
              f" reliability diagram (ECE {v['ece']:.3f}):"
              f" [{r['reliability_png']}]({r['reliability_png']}).", "",
              "Accuracy against coverage (results with confidence >= threshold are not"
              " flagged):", "", "| threshold | not flagged | their accuracy |", "|---|---|---|"]
    for row in v["coverage"]:
        if round(row["threshold"] * 100) % 10 == 0 or row["threshold"] == review.get(
                "review_below"):
            acc = pct(row["accuracy"]) if row["accuracy"] is not None else "-"
            lines.append(f"| {row['threshold']:.2f} | {pct(row['coverage'])} | {acc} |")
    comp = r.get("all_photos_not_shipped")
    if comp is not None:
        c = comp["photos_val"]
        lines += ["", "What licensed data is worth: the same recipe trained on all of"
                  f" real-photos train (sources {comp['model']['photo_sources']}; weights not"
                  " shipped, they include photos with no licence):", "",
                  "| model | val | lowest class | " + " | ".join(c["per_source"]) + " |",
                  "|---|---|---|" + "---|" * len(c["per_source"]),
                  f"| shipped (CC0 photos only) | {pct(v['accuracy'])} | {pct(v['min_class'])} | "
                  + " | ".join(pct(v["per_source"][k]) for k in c["per_source"]) + " |",
                  f"| all train photos (not shipped) | {pct(c['accuracy'])} |"
                  f" {pct(c['min_class'])} | "
                  + " | ".join(pct(x) for x in c["per_source"].values()) + " |"]
        rc = c.get("review")
        if rc and rc.get("unflagged_accuracy") is not None:
            lines += ["", f"At its own review threshold ({rc['review_below']}, fitted on val the"
                      f" same way) it leaves {pct(rc['unflagged_share'])} of val unflagged,"
                      f" {pct(rc['unflagged_accuracy'])} of them correct."]
    return lines + [""]


def photos_curve_lines() -> list[str]:
    r = load("photos-learning-curve")
    if r is None:
        return []
    points, parent = r["points"], r["parent"]
    lines = ["### Own photos: the learning curve", "",
             f"Command: `{r['command']}` ({measured(r)}; {r['wall_s'] / 60:.1f} min in all)."
             " On a fresh `fashion-tagger up` (embedded Redis, an operator key), for each k:"
             " k labelled photos per class from real-photos train (every source: these weights"
             f" are not shipped; nested samples, seed {r['seed']}; never the val split) zipped"
             " as class folders named as the model's labels and sent to `POST /v1/datasets`,"
             f" then `POST /v1/training-jobs {{\"recipe\": <curve>, \"init_from\":"
             f" \"{parent['version']}\", \"activate\": \"never\"}}`, and the version it"
             f" registers scored on all {r['val_photos']} real-photos val photos through the"
             " service (one zip to `POST /v1/jobs` with `model=<version>`, each result's label"
             f" against the manifest's). k = 0 is the untouched {parent['version']} (the shipped"
             " photo model) scored the same way. The fine-tune holds 1/12 of the k photos out"
             " for its own validation (the recipe's `val_fraction`), so it trains on the rest.",
             ""]
    failed = [p for p in points if p["k"] and "val" not in p]
    for p in failed:
        lines += [f"**No version for {p['curve']}, k = {p['k']}**: {p['outcome']}"
                  f" ({p.get('training_answer') or p['dataset']}).", ""]
    sources = list(points[0]["val"]["per_source"])
    lines += ["| curve | k (photos per class) | version | epochs x batch | optimizer steps |"
              " EMA share of the first step's weights | trained on / held out |"
              " training wall time | whole step | val accuracy | lowest class |"
              " needs review | unflagged correct | " + " | ".join(sources) + " |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(sources)]
    for p in points:
        v, t, m = p.get("val"), p.get("training", {}), p.get("model_metrics", {})
        if v is None:
            lines.append(f"| {p['curve']} | {p['k']} | - | | | | | | {p['wall_s']} s | - |"
                         " | | |" + " |" * len(sources))
            continue
        shape = (f"{t['epochs']} x {r['recipes'][p['curve']]['batch_size']}" if t else "-")
        held = f"{m['train_items']} / {m['val_items']}" if m else "-"
        share = pct(p["ema_start_share"]) if "ema_start_share" in p else "-"
        wall = f"{t['wall_s']} s" if t else "-"
        lines.append(
            f"| {p['curve']} | {p['k']} | {p['version']} | {shape}"
            f" | {p.get('optimizer_steps', '-')} | {share} | {held} | {wall} |"
            f" {p['wall_s']} s | **{pct(v['accuracy'])}** | {pct(v['min_class'])} |"
            f" {pct(v['needs_review_share'])} |"
            f" {pct(v['unflagged_accuracy']) if v.get('unflagged_accuracy') is not None else '-'}"
            " | " + " | ".join(pct(v["per_source"][k]) for k in sources) + " |")
    scored = [p for p in points if "val" in p]
    lines += ["", "| class | " + " | ".join(
        "shipped" if p["k"] == 0 else f"{p['curve']}, k = {p['k']}" for p in scored) + " |",
              "|---|" + "---|" * len(scored)]
    for label in scored[0]["val"]["per_class"]:
        lines.append(f"| {label} | " + " | ".join(pct(p["val"]["per_class"][label])
                                                 for p in scored) + " |")
    recipes = r["recipes"]
    pf = recipes["photo-finetune"]
    lines += ["", f"Plot: [{r['plot']}]({r['plot']}). \"whole step\": upload, training and"
              " scoring of one k; \"needs review\": the share of val results the service"
              " flagged (`needs_review`; a fine-tuned version keeps its parent's temperature"
              " and threshold), \"unflagged correct\": the accuracy of the others."
              f" Curve `finetune`: the general recipe ({recipes['finetune']['epochs']} epochs,"
              f" batch {recipes['finetune']['batch_size']}); its weight average (EMA, decay"
              f" {recipes['finetune']['ema_decay']}) keeps decay^(steps - 1) of the first"
              " step's weights, so on a few hundred photos it serves nearly the starting"
              f" model. Curve `photo-finetune`: batch {pf['batch_size']} and at least"
              f" {pf['min_steps']:,} optimizer steps whatever k (epochs follow the dataset's"
              " size), chosen from that arithmetic, one run, no search on val.", ""]
    return lines


def photos_throughput_lines() -> list[str]:
    r = load("photos-throughput")
    if r is None:
        return []
    e2e, best, w = r["e2e"], r["in_process"]["best"], r["e2e"]["workers"]
    rows = r["in_process"]["rows"]
    lines = ["### Real-photo throughput", "",
             f"Command: `{r['command']}` ({measured(r)}). The {r['photos']} real-photos val JPEGs"
             f" ({r['zip_bytes'] / 1e6:.1f} MB zip, stored) through `fashion-tagger up` (POST"
             " /v1/jobs, wait for the end, export as JSON lines) against the in-process"
             " `core.routing.serving_predictor()` (the shipped pair, what `fashion-tagger"
             " predict` serves: one process, decoding one image after another, then batched"
             " forward passes on every core) on the same bytes, in one run.", "",
             "| figure | value | target |", "|---|---|---|",
             f"| in-process, best ({best}) | {rows[best]['img_per_s']} photos/s | |",
             f"| end to end, the median of {len(e2e['runs_s'])} runs ({e2e['runs_s']} s) |"
             f" {e2e['img_per_s']} photos/s ({e2e['seconds']} s: upload answered after"
             f" {e2e['submit_s']} s, job ended at {e2e['ended_s']} s, export"
             f" {e2e['export_s']} s) | |",
             f"| e2e / in-process | **{r['e2e_over_in_process']}** | >= 0.8:"
             f" {target(r['e2e_over_in_process'] >= 0.8)} |",
             f"| labels equal to the in-process onnx labels | {r['labels_match_in_process']} | |",
             f"| e2e accuracy on val | {pct(r['accuracy_e2e'])} | |", "",
             "Where the time goes, per photo:", "",
             "| run | decode + preprocess | inference | wall |", "|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| in-process {name} | {row['preprocess_ms_per_image']} ms |"
                     f" {row['inference_ms_per_image']} ms |"
                     f" {1000 / row['img_per_s']:.2f} ms |")
    lines += [f"| service: the workers' stages ({w['chunks']} chunks, {w['images']} photos;"
              f" GET /metrics), the job's wall time | {w['preprocess_ms_per_image']} ms |"
              f" {w['inference_ms_per_image']} ms | {1000 / e2e['img_per_s']:.2f} ms |", "",
              f"The workers' predictor time summed over their processes is"
              f" {w['predictor_busy_over_wall']}x the job's wall time (the inference worker"
              f" runs {r['inference_processes']} processes). Plot:"
              f" [{r['plot']}]({r['plot']}).", ""]
    return lines
