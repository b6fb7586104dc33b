"""``python -m vf_jax evaluate --ref DIR --est DIR``: the paper's metrics over
folders of references and estimates, summarised per subset.

Files pair by relative path without the extension (``a/b.flac`` with
``a/b.wav``); the unpaired ones are listed. Each pair is read as mono (channels
averaged, noted); an estimate at another sample rate is resampled to the
reference's (noted); different lengths are cut to the shorter (noted). Every
metric of :mod:`vf_jax.evaluation.metrics` is computed per file in worker processes. A
subset is the first folder of the relative path; files at the top form the
subset named after the reference folder. With the degraded inputs (``--input``)
every metric is computed for them too, against the same references: the report
shows the input's scores beside the estimate's and the gain (the estimate's
mean minus the input's, over the files where both are defined).

Writes into ``--out``: ``per_file.csv``, ``summary.md`` (per subset the mean
and a 95 % confidence interval, Student's t, of each metric over the files
where it is defined; then the notes, unpaired and unreadable files) and
``summary.json``; and per subset ``figure_<subset>.png``: mel spectrograms of
estimate and reference (and of the degraded input when ``--input`` is given)
for a few files, and the distribution of each metric over the subset. Each file
is written whole or not at all.

References and inputs may come from a built dataset (:func:`export_pairs`: the
GSR test sets, or the held-out pairs of ``build paired``); several restorers
(``--weights NAME=FOLDER`` repeated) each get a report of their own and a
side-by-side ``comparison.md`` (:func:`comparison`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError

REPORT_FILES = ("per_file.csv", "summary.md", "summary.json")


def pair_files(ref_dir: str, est_dir: str):
    """``(pairs, only_ref, only_est)``: ``pairs`` are ``(key, ref path, est
    path)`` with ``key`` the relative path without extension."""
    for name, d in (("--ref", ref_dir), ("--est", est_dir)):
        if not os.path.isdir(d):
            raise UserError(f"{name} {d} is not a folder")
    return audio_io.pair_audio_files(ref_dir, est_dir)


def export_pairs(data_dir: str, folder: str, kind: str = "testset") -> tuple[str, str]:
    """A built paired dataset of ``data_dir`` as ``folder/clean/<rel>.wav`` and
    ``folder/degraded/<rel>.wav`` (44.1 kHz); files already there are kept.
    ``testset``: the GSR test sets (``python -m vf_jax.data build testset``),
    ``<rel>`` = ``<subset>/<name>``; ``paired``: the held-out (validation)
    pairs of ``python -m vf_jax.data build paired``, ``<rel>`` their relative
    path. Returns ``(clean folder, degraded folder)``."""
    from vf_jax.data import builders
    source = builders.data_source(kind, data_dir, "test" if kind == "testset" else "validation")
    clean_dir, degraded_dir = os.path.join(folder, "clean"), os.path.join(folder, "degraded")
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
    for i in range(len(source)):
        record = source[i]
        name = text(record["name"])
        if kind == "testset":
            rel = os.path.join(text(record["subset"]),
                               os.path.splitext(os.path.basename(name))[0] + ".wav")
        else:
            rel = name + ".wav"
        for root, field in ((clean_dir, "clean"), (degraded_dir, "degraded")):
            path = os.path.join(root, rel)
            if not os.path.exists(path):
                audio_io.write_audio(path, audio_io.from_pcm16(record[field]), SAMPLE_RATE)
    return clean_dir, degraded_dir


def subset_of(key: str) -> str:
    parts = key.replace(os.sep, "/").split("/")
    return parts[0] if len(parts) > 1 else "."


def evaluate_pair(key: str, ref_path: str, est_path: str, with_dnsmos: bool = True) -> dict:
    """One row: ``{"file", "subset", metrics..., "notes"}`` or ``{"file",
    "error"}`` when a file cannot be read."""
    from vf_jax.evaluation import metrics
    try:
        ref, ref_rate = audio_io.read_audio(ref_path)
        est, est_rate = audio_io.read_audio(est_path)
    except UserError as e:
        return {"file": key, "subset": subset_of(key), "error": str(e)}
    notes = []
    if ref.shape[1] > 1 or est.shape[1] > 1:
        notes.append("mixed down to mono")
    ref, est = ref.mean(axis=1), est.mean(axis=1)
    if est_rate != ref_rate:
        notes.append(f"estimate resampled {est_rate} -> {ref_rate} Hz")
        est = audio_io.resample(est[:, None], est_rate, ref_rate)[:, 0]
    if len(est) != len(ref):
        notes.append(f"lengths {len(ref)} / {len(est)} samples: cut to the shorter")
    if not np.any(ref):
        notes.append("silent reference: reference-based metrics undefined")
    row = {"file": key, "subset": subset_of(key)}
    row.update(metrics.all_metrics(ref, est, ref_rate, with_dnsmos=with_dnsmos))
    row["notes"] = "; ".join(notes)
    return row


def summarise(rows: list[dict]) -> dict:
    """``{subset: {metric: {"mean", "ci95", "n"}}}`` over the finite values
    (SI-SDR's +inf for perfect matches counts as undefined in the mean)."""
    out = {}
    from scipy import stats
    good = [r for r in rows if "error" not in r]
    names = [k for k in (good[0] if good else {}) if k not in ("file", "subset", "notes")]
    for subset in sorted({r["subset"] for r in good} | ({"all"} if good else set())):
        chosen = good if subset == "all" else [r for r in good if r["subset"] == subset]
        out[subset] = {}
        for name in names:
            values = np.array([r[name] for r in chosen], np.float64)
            values = values[np.isfinite(values)]
            n = len(values)
            mean = float(values.mean()) if n else float("nan")
            ci = (float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
                  if n > 1 else float("nan"))
            out[subset][name] = {"mean": mean, "ci95": ci, "n": n}
    return out


def gains(rows: list[dict], input_rows: list[dict]) -> dict:
    """``{subset: {metric: {"estimate", "input", "gain", "n"}}}``: the means
    over the files where the metric is defined for both the estimate and its
    degraded input, and their difference (estimate - input)."""
    inputs = {r["file"]: r for r in input_rows if "error" not in r}
    good = [r for r in rows if "error" not in r and r["file"] in inputs]
    names = [k for k in (good[0] if good else {}) if k not in ("file", "subset", "notes")]
    out = {}
    for subset in sorted({r["subset"] for r in good} | ({"all"} if good else set())):
        chosen = good if subset == "all" else [r for r in good if r["subset"] == subset]
        out[subset] = {}
        for name in names:
            pairs = np.array([(r[name], inputs[r["file"]].get(name, np.nan)) for r in chosen],
                             np.float64).reshape(-1, 2)
            pairs = pairs[np.all(np.isfinite(pairs), axis=1)]
            est, inp = (pairs.mean(axis=0) if len(pairs) else (np.nan, np.nan))
            out[subset][name] = {"estimate": float(est), "input": float(inp),
                                 "gain": float(est - inp), "n": int(len(pairs))}
    return out


def _markdown(summary: dict, rows: list[dict], only_ref, only_est,
              gain: dict | None = None) -> str:
    lines = ["# Evaluation", ""]
    for subset, table in summary.items():
        count = len([r for r in rows if "error" not in r and (subset == "all" or
                                                              r["subset"] == subset)])
        lines += [f"## {subset} ({count} files)", ""]
        if gain is None:
            lines += ["| metric | mean | ±95 % CI | n |", "| --- | ---: | ---: | ---: |"]
            for name, v in table.items():
                lines.append(f"| {name} | {v['mean']:.4f} | {v['ci95']:.4f} | {v['n']} |")
        else:
            lines += ["| metric | estimate | ±95 % CI | n | degraded input | gain | n (both) |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for name, v in table.items():
                g = gain.get(subset, {}).get(name, {"input": math.nan, "gain": math.nan,
                                                    "n": 0})
                lines.append(f"| {name} | {v['mean']:.4f} | {v['ci95']:.4f} | {v['n']} | "
                             f"{g['input']:.4f} | {g['gain']:+.4f} | {g['n']} |")
        lines.append("")
    noted = [r for r in rows if r.get("notes")]
    if noted:
        lines += ["## Notes", ""] + [f"- `{r['file']}`: {r['notes']}" for r in noted] + [""]
    errors = [r for r in rows if "error" in r]
    if errors:
        lines += ["## Unreadable", ""] + [f"- `{r['file']}`: {r['error']}" for r in errors] + [""]
    if only_ref or only_est:
        lines += ["## Unpaired", ""]
        lines += [f"- reference only: `{k}`" for k in only_ref]
        lines += [f"- estimate only: `{k}`" for k in only_est]
        lines.append("")
    return "\n".join(lines)


def comparison(summaries: dict) -> str:
    """Markdown: per subset, each metric's mean and 95 % CI for every restorer
    side by side (``summaries``: name -> :func:`summarise` of its files)."""
    names = list(summaries)
    lines = ["# Comparison", "", "Mean ± 95 % CI over the files of each subset; "
             + ", ".join(f"`{n}`" for n in names) + ".", ""]
    subsets = sorted(set().union(*(s.keys() for s in summaries.values())),
                     key=lambda s: (s != "all", s))
    for subset in subsets:
        metrics = [m for m in next(s[subset] for s in summaries.values() if subset in s)]
        lines += [f"## {subset}", "", "| metric | " + " | ".join(names) + " |",
                  "| --- |" + " ---: |" * len(names)]
        for metric in metrics:
            cells = []
            for n in names:
                v = summaries[n].get(subset, {}).get(metric)
                cells.append("" if v is None else f"{v['mean']:.4f} ± {v['ci95']:.4f}")
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def subset_figure(path: str, subset: str, rows: list[dict], paths: dict, examples: int = 3,
                  inputs: dict | None = None) -> None:
    """One PNG: mel spectrograms of up to ``examples`` files of the subset
    (degraded input when known, estimate, reference) over box plots of every
    metric. ``paths``: file key -> (reference path, estimate path)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vf_jax.audio import mel as mel_lib
    from vf_jax.evaluation import metrics
    good = [r for r in rows if "error" not in r and r["subset"] == subset]
    shown = good[:examples]
    names = [k for k in (good[0] if good else {}) if k not in ("file", "subset", "notes")]
    columns = (["degraded"] if inputs else []) + ["estimate", "reference"]
    n_rows = len(shown) + 1
    fig = plt.figure(figsize=(4 * len(columns), 2.4 * n_rows + 1.0))
    grid = fig.add_gridspec(n_rows, len(columns))
    for i, row in enumerate(shown):
        ref_path, est_path = paths[row["file"]]
        sources = {"estimate": est_path, "reference": ref_path}
        if inputs:
            sources["degraded"] = inputs.get(row["file"])
        for j, column in enumerate(columns):
            ax = fig.add_subplot(grid[i, j])
            if sources.get(column) is None:
                ax.axis("off")
                continue
            audio, rate = audio_io.read_audio(sources[column])
            audio = audio_io.resample(audio.mean(axis=1, keepdims=True), rate, SAMPLE_RATE)[:, 0]
            _, mel = metrics.spectrograms(audio, SAMPLE_RATE)
            ax.imshow(np.log10(np.maximum(mel, mel_lib.LOG_FLOOR)).T, origin="lower",
                      aspect="auto", vmin=-5, vmax=2, cmap="magma",
                      extent=(0, len(audio) / SAMPLE_RATE, 0, mel.shape[1]))
            ax.set_title(f"{row['file']}: {column}", fontsize=8)
            ax.tick_params(labelsize=6)
    ax = fig.add_subplot(grid[n_rows - 1, :])
    data = [np.array([r[k] for r in good], np.float64) for k in names]
    data = [d[np.isfinite(d)] for d in data]
    scale = [np.nanmax(np.abs(d)) if d.size else 1.0 for d in data]
    ax.boxplot([d / (s or 1.0) for d, s in zip(data, scale)], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([f"{k}\n(÷{s:.3g})" for k, s in zip(names, scale)], fontsize=6)
    ax.set_title(f"{subset}: metrics over {len(good)} files, each scaled by its largest value",
                 fontsize=8)
    fig.tight_layout()
    tmp = f"{path}.partial-{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def write_whole(path: str, text: str) -> None:
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserError(f"cannot write {path}: {e.strerror}") from None


def run(ref_dir: str, est_dir: str, out_dir: str, workers: int = 0, with_dnsmos: bool = True,
        overwrite: bool = False, quiet: bool = False, inputs: dict | None = None) -> dict:
    """Evaluate and write the report; returns the summary. ``inputs``: file key
    -> degraded input path, scored too (the gain) and shown in the figures."""
    pairs, only_ref, only_est = pair_files(ref_dir, est_dir)
    inputs = inputs or {}
    input_pairs = [(key, ref, inputs[key]) for key, ref, _ in pairs if key in inputs]
    if not pairs:
        raise UserError(f"no files of {est_dir} pair with files of {ref_dir} "
                        "(pairing is by relative path without the extension)")
    existing = [f for f in REPORT_FILES if os.path.exists(os.path.join(out_dir, f))]
    if existing and not overwrite:
        raise UserError(f"{os.path.join(out_dir, existing[0])} exists (use --overwrite)")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {out_dir}: {e.strerror}") from None
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = [(True, p) for p in pairs] + [(False, p) for p in input_pairs]
    rows, input_rows = [], []
    bar = None
    if not quiet:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="file", desc="evaluating", file=sys.stderr)
    if workers == 1:
        for is_estimate, (key, ref, est) in jobs:
            (rows if is_estimate else input_rows).append(evaluate_pair(key, ref, est,
                                                                       with_dnsmos))
            if bar is not None:
                bar.update(1)
    else:
        import multiprocessing
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(evaluate_pair, key, ref, est, with_dnsmos): is_estimate
                       for is_estimate, (key, ref, est) in jobs}
            for future in as_completed(futures):
                (rows if futures[future] else input_rows).append(future.result())
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    top = os.path.basename(os.path.normpath(os.path.abspath(ref_dir))) or "top"
    for row in rows + input_rows:        # files at the top: the folder's name
        if row["subset"] == ".":
            row["subset"] = top
    rows.sort(key=lambda r: r["file"])
    summary = summarise(rows)
    gain = gains(rows, input_rows) if input_pairs else None

    metric_names = [k for k in next((r for r in rows if "error" not in r), {})
                    if k not in ("file", "subset", "notes")]
    by_input = {r["file"]: r for r in input_rows if "error" not in r}
    columns = (["file", "subset"] + metric_names
               + ([f"{m}_input" for m in metric_names] if input_pairs else [])
               + ["notes", "error"])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows({**r, **{f"{m}_input": by_input[r["file"]][m] for m in metric_names
                              if r["file"] in by_input and m in by_input[r["file"]]}}
                     for r in rows)
    report = {"summary": summary, "unpaired": {"reference_only": only_ref,
                                               "estimate_only": only_est},
              **({"gain": gain,
                  "input_unreadable": {r["file"]: r["error"] for r in input_rows
                                       if "error" in r}} if input_pairs else {}),
              "unreadable": {r["file"]: r["error"] for r in rows if "error" in r},
              "notes": {r["file"]: r["notes"] for r in rows if r.get("notes")}}
    write_whole(os.path.join(out_dir, "per_file.csv"), buffer.getvalue())
    write_whole(os.path.join(out_dir, "summary.json"),
                 json.dumps(report, indent=2, allow_nan=True) + "\n")
    markdown = _markdown(summary, rows, only_ref, only_est, gain)
    write_whole(os.path.join(out_dir, "summary.md"), markdown)
    paths = {key: (ref, est) for key, ref, est in pairs}
    for subset in sorted({r["subset"] for r in rows if "error" not in r}):
        subset_figure(os.path.join(out_dir, f"figure_{subset}.png"), subset, rows, paths,
                      inputs=inputs or None)
    if not quiet:
        print(markdown, file=sys.stderr)
        print(f"wrote {', '.join(REPORT_FILES)} and figure_*.png to {os.path.abspath(out_dir)}",
              file=sys.stderr)
    return summary
