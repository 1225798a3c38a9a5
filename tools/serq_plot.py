#!/usr/bin/python3
"""Plots from a merged serq result file (serq-merge's PREFIX.h5 or PREFIX.csv), each written as PREFIX.png and
PREFIX.pdf: a metric against the correction rank (rank), against bits per weight with the Pareto front (pareto),
and per-layer quantization errors of chosen runs (layers, .h5 only)."""

import argparse
import itertools
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib import ticker  # noqa: E402

from serq_results import (EXPERIMENT_NAME, HEADLINE_KEYS, METHOD, METHOD_NAMES, PARAMETER_KEYS,  # noqa: E402
                          RANK, WEIGHT_QUANTIZER, ResultsError, describe, differing_keys, label_keys, load_runs,
                          metric_axis_label, resolve_key, run_tool, select_runs, shared_values, text_of,
                          varying_keys)

COLUMN_SIZE = (3.4, 2.6)  # inches: one column of a two-column paper
PAGE_SIZE = (7.0, 2.8)    # inches: the full text width, for per-layer plots
# --layer-metric -> (axis label, title)
LAYER_METRICS = {"output_rel_error": ("Output relative error ‖ΔY‖/‖Y‖", "Per-layer output relative error"),
                 "weight_rel_error": ("Weight relative error ‖ΔW‖/‖W‖", "Per-layer weight relative error"),
                 "output_qsnr_db": ("Output QSNR (dB)", "Per-layer output QSNR")}
MARKERS = "osD^vP*Xh<>p"
MAX_TICK_LABELS = 48


def pareto_front(points):
    """Indices of the points (bits, metric) that no other point beats in both (lower is better), by bits."""
    front = []
    for i, (bits, value) in enumerate(points):
        dominated = any(b <= bits and v <= value and (b < bits or v < value) for b, v in points)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def short_layer_name(name):
    """"layers.0.self_attn.q_proj" -> "0.q", "model.layers.3.mlp.down_proj" -> "3.down", "lm_head" -> "head"."""
    match = re.fullmatch(r"(?:model\.)?layers\.(\d+)\.(?:\w+\.)?(\w+?)(?:_proj)?", name)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    return "head" if name.endswith("lm_head") else name


def finite(row, column):
    value = row.get(column, math.nan)
    return isinstance(value, float) and math.isfinite(value)


def line_labels(groups, exclude=()):
    """A distinct legend label for each group of runs: the method, its headline parameters, and what else tells
    the groups apart (a method parameter only when it varies among that method's runs)."""
    everything = [row for rows in groups for row in rows]
    config = [c for c in everything[0] if c.startswith("config.") and c not in (EXPERIMENT_NAME, *exclude)]
    keys = [WEIGHT_QUANTIZER, *[key for key in HEADLINE_KEYS if key not in exclude]]
    by_method = {}
    for row in everything:
        by_method.setdefault(row[METHOD], []).append(row)
    for key in label_keys(varying_keys(everything, config)):
        if key in PARAMETER_KEYS:
            shown = any(varying_keys(rows, [key]) for rows in by_method.values())
        else:
            shown = key != METHOD and varying_keys(everything, [key])
        if shown and key not in keys:
            keys.append(key)
    labels = [describe(shared_values(rows, [METHOD, *keys]), keys) for rows in groups]
    for tag in ("experiment", "run_id"):
        if len(set(labels)) == len(labels):
            break
        labels = [f"{label} [{rows[0][tag]}]" for label, rows in zip(labels, groups)]
    return labels


def common_setting(rows):
    """"stories260K-hf W4A4 g32" when the runs share a model and setting, for titles."""
    shared = shared_values(rows, ["model", "setting"])
    return " ".join(shared[key] for key in ("model", "setting") if key in shared)


def metric_label(rows, column):
    dataset = shared_values(rows, ["config.eval.dataset"]).get("config.eval.dataset")
    label = metric_axis_label(column)
    return f"{label} ({dataset})" if dataset and column in ("metric.ppl", "metric.mean_nll") else label


def reference_lines(ax, rows, metric, method, style):
    """Horizontal lines for the runs of a method without a rank (fp dashed, rtn dotted); equal ones drawn once."""
    runs = [row for row in rows if row[METHOD] == method and finite(row, metric)]
    if not runs:
        return
    ignored = tuple(c for c in runs[0] if c.startswith("config.quant.")) if method == "fp" else ()
    drawn = set()
    for label, row in zip(line_labels([[row] for row in runs], ignored), runs):
        if (label, row[metric]) not in drawn:
            drawn.add((label, row[metric]))
            ax.axhline(row[metric], linestyle=style, linewidth=1.0, color="black" if method == "fp" else "0.45",
                       label=label, zorder=1)


def plot_rank(runs, args):
    metric = resolve_key(runs, args.metric)
    rank = resolve_key(runs, RANK)
    swept = [row for row in runs.rows if row.get(rank, "") != "" and finite(row, metric)]
    if not swept:
        raise ResultsError(f"no run has both {rank} and {metric} (rank sweeps are serq, lorc, lqer and l2qer runs)")
    config = [c for c in runs.columns if c.startswith("config.") and c not in (rank, EXPERIMENT_NAME)]
    line_keys = varying_keys(swept, config)
    lines = {}
    for row in sorted(swept, key=lambda row: float(row[rank])):
        lines.setdefault(tuple(text_of(row.get(key, "")) for key in line_keys), []).append(row)
    labels = line_labels(list(lines.values()), (rank,))
    for label, rows in zip(labels, lines.values()):
        for a, b in zip(rows, rows[1:]):
            if a[rank] == b[rank]:
                raise ResultsError(f"two runs of '{label}' have {rank} = {a[rank]}: they differ in "
                                   f"{', '.join(differing_keys([a, b], runs.columns))}; keep one with --filter "
                                   f"KEY=VALUE or --experiment NAME")
    figure, ax = plt.subplots(figsize=args.size or COLUMN_SIZE)
    for label, rows, marker in zip(labels, lines.values(), itertools.cycle(MARKERS)):
        ax.plot([float(row[rank]) for row in rows], [row[metric] for row in rows], marker=marker, markersize=4,
                linewidth=1.2, label=label, zorder=3)
    reference_lines(ax, runs.rows, metric, "fp", "--")
    reference_lines(ax, runs.rows, metric, "rtn", ":")
    ticks = sorted({float(row[rank]) for row in swept})
    ax.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
    methods = {row[METHOD] for row in swept}
    ax.set_xlabel("Salient channels r" if methods == {"serq"} else "Rank r")
    ax.set_ylabel(metric_label(swept, metric))
    names = ", ".join(METHOD_NAMES.get(m, m) for m in dict.fromkeys(row[METHOD] for row in swept))
    finish(figure, ax, args, f"{names}: {metric_axis_label(metric).lower()} vs rank", swept)


def plot_pareto(runs, args):
    metric = resolve_key(runs, args.metric)
    bits = resolve_key(runs, "metric.bits_per_weight")
    points = [row for row in runs.rows if row[METHOD] != "fp" and finite(row, metric) and finite(row, bits)]
    if not points:
        raise ResultsError(f"no quantized run has both {metric} and {bits}")
    figure, ax = plt.subplots(figsize=args.size or COLUMN_SIZE)
    methods = list(dict.fromkeys(row[METHOD] for row in points))
    for method, marker in zip(methods, itertools.cycle(MARKERS)):
        rows = [row for row in points if row[METHOD] == method]
        ax.scatter([row[bits] for row in rows], [row[metric] for row in rows], marker=marker, s=22,
                   label=METHOD_NAMES.get(method, method), zorder=3)
    front = pareto_front([(row[bits], row[metric]) for row in points])
    ax.step([points[i][bits] for i in front], [points[i][metric] for i in front], where="post", color="0.3",
            linewidth=1.0, label="Pareto front", zorder=2)
    reference_lines(ax, runs.rows, metric, "fp", "--")
    ax.set_xlabel(metric_axis_label(bits))
    ax.set_ylabel(metric_label(points, metric))
    finish(figure, ax, args, f"{metric_axis_label(metric)} vs {metric_axis_label(bits).lower()}", points)


def plot_layers(runs, args):
    if not runs.path.lower().endswith((".h5", ".hdf5")):
        raise ResultsError(f"layers needs the merged .h5 (the .csv has no per-layer data): {runs.path}")
    import h5py  # the .h5 input checked above
    chosen = runs.rows
    with h5py.File(runs.path, "r") as file:
        stored = set(file["layers"]) if "layers" in file else set()
        if args.runs:
            by_id = {row["run_id"]: row for row in runs.rows}
            for run_id in args.runs.split(","):
                if run_id not in by_id:
                    raise ResultsError(f"--runs: no run '{run_id}' in {runs.path} (after --filter/--experiment)")
                if run_id not in stored:
                    raise ResultsError(f"--runs: run '{run_id}' has no /layers/{run_id} in {runs.path} (fp runs "
                                       f"and runs without diagnostics have none)")
            chosen = [by_id[run_id] for run_id in args.runs.split(",")]
        chosen = [row for row in chosen if row["run_id"] in stored]
        if not chosen:
            raise ResultsError(f"none of the chosen runs has per-layer data (/layers/<run_id>) in {runs.path}")
        series = []
        for row in chosen:
            group = file["layers"][row["run_id"]]
            if args.layer_metric not in group or "name" not in group:
                raise ResultsError(f"/layers/{row['run_id']} has no '{args.layer_metric}' in {runs.path}")
            series.append((list(group["name"].asstr()[()]), [float(v) for v in group[args.layer_metric][()]]))
    names = series[0][0]
    for row, (other, _) in zip(chosen, series):
        if other != names:
            raise ResultsError(f"runs {chosen[0]['run_id']} and {row['run_id']} quantize different layers; plot "
                               f"runs of one model (--filter model=NAME)")
    figure, ax = plt.subplots(figsize=args.size or PAGE_SIZE)
    positions = range(len(names))
    labels = line_labels([[row] for row in chosen])
    for label, (_, values), marker in zip(labels, series, itertools.cycle(MARKERS)):
        ax.plot(positions, values, marker=marker, markersize=3, linewidth=1.0, label=label)
    blocks = [short_layer_name(name).split(".")[0] for name in names]
    for i in range(1, len(names)):
        if blocks[i] != blocks[i - 1]:
            ax.axvline(i - 0.5, color="0.85", linewidth=0.6, zorder=0)
    step = math.ceil(len(names) / MAX_TICK_LABELS)
    ax.set_xticks(list(positions)[::step], [short_layer_name(name) for name in names][::step], rotation=90,
                  fontsize=6)
    ax.set_xlim(-0.5, len(names) - 0.5)
    if args.layer_metric.endswith("rel_error"):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    axis_label, title = LAYER_METRICS[args.layer_metric]
    ax.set_xlabel("Layer (block.projection, model order)")
    ax.set_ylabel(axis_label)
    finish(figure, ax, args, title, chosen)


def finish(figure, ax, args, title, rows):
    """Title, grid and legend, then PREFIX.png and PREFIX.pdf."""
    setting = common_setting(rows)
    if args.title is not None:
        title = args.title
    elif setting:
        title = f"{title} ({setting})"
    if title:
        ax.set_title(title, fontsize=8)
    ax.grid(True, which="major", linewidth=0.4, color="0.9")
    # The legend goes below the axes, their tick labels and x label, so it never hides data.
    below = ax.get_tightbbox(figure.canvas.get_renderer()).transformed(ax.transAxes.inverted()).y0
    entries = len(ax.get_legend_handles_labels()[0])
    columns = 3 if figure.get_figwidth() < 5 else 4
    ax.legend(fontsize=6.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, below - 0.02),
              ncol=min(columns, entries), handlelength=1.8, columnspacing=1.0)
    directory = os.path.dirname(args.output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    # Both files are cropped to the drawing, legend included, measured once.
    crop = figure.get_tightbbox(figure.canvas.get_renderer()).padded(0.03)
    for extension in ("png", "pdf"):
        figure.savefig(f"{args.output}.{extension}", dpi=200, bbox_inches=crop)
    plt.close(figure)


def size(text):
    try:
        width, height = (float(part) for part in text.split(","))
        return width, height
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected WIDTH,HEIGHT in inches, e.g. 3.4,2.6") from None


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="serq_plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  tools/serq_plot.py rank results/all.h5 --experiment ablation_rank --output figures/rank\n"
               "  tools/serq_plot.py pareto results/all.csv --experiment w4a4_llama --output figures/pareto\n"
               "  tools/serq_plot.py layers results/all.h5 --experiment w4a4_llama "
               "--filter quant.method=serq --output figures/layers_serq")
    plots = parser.add_subparsers(dest="plot", required=True, metavar="{rank,pareto,layers}")
    for name, text in (("rank", "metric vs config.quant.rank, one line per other varying setting"),
                       ("pareto", "metric vs bits per weight, one marker per run, with the Pareto front"),
                       ("layers", "per-layer errors of chosen runs (merged .h5 only)")):
        plot = plots.add_parser(name, help=text, description=text)
        plot.add_argument("merged", help="PREFIX.h5 or PREFIX.csv written by serq-merge")
        plot.add_argument("--output", required=True, help="PREFIX of the PREFIX.png and PREFIX.pdf written")
        plot.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                          help="keep the runs whose KEY equals VALUE; repeatable")
        plot.add_argument("--experiment", help="keep the runs of this experiment")
        plot.add_argument("--title", help="title ('' for none; default: what is plotted and the shared setting)")
        plot.add_argument("--size", type=size, help="WIDTH,HEIGHT in inches")
        if name == "layers":
            plot.add_argument("--runs", help="comma list of run ids (default: every chosen run with layer data)")
            plot.add_argument("--layer-metric", choices=tuple(LAYER_METRICS), default="output_rel_error")
        else:
            plot.add_argument("--metric", default="metric.ppl", help="the y column (default: metric.ppl)")
    return parser.parse_args(argv)


def draw(args):
    runs = select_runs(load_runs(args.merged), args.filter, args.experiment)
    {"rank": plot_rank, "pareto": plot_pareto, "layers": plot_layers}[args.plot](runs, args)


def main(argv=None):
    args = parse_arguments(argv)
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "pdf.fonttype": 42})
    return run_tool("serq_plot", lambda: draw(args))


if __name__ == "__main__":
    sys.exit(main())
