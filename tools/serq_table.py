#!/usr/bin/python3
"""Renders a paper table from a merged serq result file (serq-merge's PREFIX.h5 or PREFIX.csv): one row per method
configuration (FP first), one column group per model/setting, one sub-column per metric; Markdown, LaTeX or CSV."""

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass

from serq_results import (HEADLINE_KEYS, METHOD, PARAMETER_KEYS, WEIGHT_QUANTIZER, ResultsError, describe,
                          differing_keys, headline_metric, label_keys, load_runs, metric_header, read_window_scores,
                          resolve_key, select_runs, run_tool, shared_values, text_of, varying_keys)

EMPTY_CELL = {"md": "–", "latex": "--", "csv": ""}
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "α": r"$\alpha$",
                 "±": r"$\pm$"}


@dataclass
class Table:
    labels: list   # row labels, FP rows first
    fp_rows: int   # how many leading rows are FP
    groups: list   # column group headers
    metrics: list  # metric columns, one sub-column each per group
    cells: list    # cells[row][group][metric]: float, string, or None when no run fills it


def build_table(runs, row_keys, col_keys, metrics):
    """Lays out the runs; row_keys None = the method plus the parameters that vary among that method's runs."""
    methods = list(dict.fromkeys(row[METHOD] for row in runs.rows))
    if "fp" in methods:
        methods.remove("fp")
        methods.insert(0, "fp")
    quantized = [row for row in runs.rows if row[METHOD] != "fp"] or runs.rows
    groups = list(dict.fromkeys(_values(row, col_keys) for row in quantized))
    labels, cells, fp_rows = [], [], 0
    for method in methods:
        members = [row for row in runs.rows if row[METHOD] == method]
        if row_keys is None:
            keys = varying_keys(members, [key for key in PARAMETER_KEYS if key in runs.columns])
        else:
            keys = [key for key in row_keys if key != METHOD]
        by_row = {}
        for row in members:
            by_row.setdefault(_values(row, keys), []).append(row)
        shown = [key for key in PARAMETER_KEYS if key in HEADLINE_KEYS or key == WEIGHT_QUANTIZER or key in keys]
        shown += label_keys(key for key in keys if key not in PARAMETER_KEYS)
        for identity in sorted(by_row, key=_row_order(list(by_row))):
            label = describe(shared_values(by_row[identity], [METHOD, *shown]), shown)
            labels.append(label)
            cells.append([_cell(by_row[identity], group, col_keys, metrics, method, label, runs.columns)
                          for group in groups])
            fp_rows += method == "fp"
    headers = [" ".join(value for value in group if value) for group in groups]
    return Table(labels, fp_rows, headers, metrics, cells)


def _values(row, keys):
    return tuple(text_of(row.get(key, "")) for key in keys)


def _row_order(identities):
    """Sort key for a method's rows: numbers ascending, other values in order of first appearance."""
    def key(identity):
        order = []
        for position, value in enumerate(identity):
            try:
                order.append((0, float(value), 0))
            except ValueError:
                order.append((1, 0.0, [other[position] for other in identities].index(value)))
        return order
    return key


def _cell(members, group, col_keys, metrics, method, label, columns):
    """The metric values of the one run in this row and column group. The FP row takes the fp run of the same
    setting, or else the fp run of the same model etc. (full precision ignores the quant keys)."""
    in_cell = [row for row in members if _values(row, col_keys) == group]
    if method == "fp" and not in_cell:
        loose = [i for i, key in enumerate(col_keys) if key != "setting" and not key.startswith("config.quant.")]
        in_cell = [row for row in members if all(text_of(row.get(col_keys[i], "")) == group[i] for i in loose)]
    if len(in_cell) > 1:
        header = " ".join(value for value in group if value)
        raise ResultsError(f"{len(in_cell)} runs fill row '{label}', column '{header}': they differ in "
                           f"{', '.join(differing_keys(in_cell, columns))}; add the key to --rows or keep one "
                           f"run with --filter KEY=VALUE or --experiment NAME")
    if not in_cell:
        return [None] * len(metrics)
    return [_present(in_cell[0].get(metric, "")) for metric in metrics]


def _present(value):
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value or None


# Metrics whose interval comes from a bootstrap over the run's windows; any other metric with a _stderr column gets
# the normal interval value ± z·stderr.
WINDOW_METRICS = ("metric.ppl", "metric.kld.mean")
CI_PREFIX = "ci."


def add_intervals(runs, metrics, level, resamples, seed):
    """Sets row["ci.<metric>"] = (low, high) for each run and metric that has an interval at `level`: perplexity and
    mean KLD from a percentile bootstrap over the run's windows (each resample draws the windows with replacement),
    other metrics from their _stderr. Returns how many runs lacked per-window sums."""
    import numpy
    from statistics import NormalDist
    z = NormalDist().inv_cdf((1 + level) / 2)
    windows = read_window_scores(runs.path) if any(m in WINDOW_METRICS for m in metrics) else {}
    quantiles = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    lacking = 0
    for row in runs.rows:
        scores = windows.get(row["run_id"])
        if scores is None and any(m in WINDOW_METRICS for m in metrics):
            lacking += 1
        for metric in metrics:
            if metric in WINDOW_METRICS:
                if scores is None or not isinstance(row.get(metric), float) or math.isnan(row[metric]):
                    continue
                tokens, nll, kld = scores
                rng = numpy.random.default_rng(seed)
                counts = rng.multinomial(len(tokens), numpy.full(len(tokens), 1 / len(tokens)), size=resamples)
                sums = counts @ (nll if metric == "metric.ppl" else kld) / (counts @ tokens)
                values = numpy.exp(sums) if metric == "metric.ppl" else sums
                low, high = numpy.percentile(values, quantiles)
                row[CI_PREFIX + metric] = (float(low), float(high))
            elif isinstance(row.get(metric + "_stderr"), float) and not math.isnan(row[metric + "_stderr"]):
                row[CI_PREFIX + metric] = (row[metric] - z * row[metric + "_stderr"],
                                           row[metric] + z * row[metric + "_stderr"])
    return lacking


def format_cells(table, precision, errors=None, intervals=None):
    """cells[row][group][metric] as text (None when empty): numbers with the metric's decimals, "value ± error"
    where `errors` (a Table of the same layout, e.g. the metrics' _stderr columns) has a number, and
    "value [low, high]" where `intervals` (the same layout, of (low, high) pairs) has one."""
    def text(value, error, interval, metric):
        if not isinstance(value, float):
            return value
        digits = precision.get(metric, 0 if metric.startswith("count.") else precision[None])
        shown = f"{value:.{digits}f}" + (f" ± {error:.{digits}f}" if isinstance(error, float) else "")
        if isinstance(interval, tuple):
            shown += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
        return shown
    def layout(other):
        return other.cells if other else [[[None] * len(table.metrics) for _ in row] for row in table.cells]
    return [[[text(value, error, interval, metric)
              for value, error, interval, metric in zip(group, error_group, interval_group, table.metrics)]
             for group, error_group, interval_group in zip(row, error_row, interval_row)]
            for row, error_row, interval_row in zip(table.cells, layout(errors), layout(intervals))]


def best_cells(table, texts, direction):
    """(row, group, metric) of the best shown value per sub-column among the non-FP rows; ties all count."""
    best = set()
    if direction == "none":
        return best
    pick = min if direction == "min" else max
    for g in range(len(table.groups)):
        for m in range(len(table.metrics)):
            shown = {}
            for r in range(table.fp_rows, len(table.labels)):
                if isinstance(table.cells[r][g][m], float):
                    shown[r] = float(texts[r][g][m].split(" ")[0])
            if shown:
                target = pick(shown.values())
                best.update((r, g, m) for r, value in shown.items() if value == target)
    return best


def flat_headers(table):
    """One header row for Markdown and CSV: "group · metric" per column, or with a single column group, that group
    once beside "Method" and the bare metric names."""
    if len(table.groups) == 1:
        return [f"Method ({table.groups[0]})"] + [metric_header(metric) for metric in table.metrics]
    return ["Method"] + [f"{group} · {metric_header(metric)}" for group in table.groups for metric in table.metrics]


def render_markdown(table, texts, bold):
    headers = flat_headers(table)
    lines = ["| " + " | ".join(_markdown_escape(h) for h in headers) + " |",
             "|---|" + "---:|" * (len(headers) - 1)]
    for r, label in enumerate(table.labels):
        cells = [_markdown_escape(label)]
        for g, group in enumerate(texts[r]):
            for m, value in enumerate(group):
                shown = EMPTY_CELL["md"] if value is None else _markdown_escape(value)
                cells.append(f"**{shown}**" if (r, g, m) in bold else shown)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown_escape(text):
    return text.replace("|", r"\|")


def latex_escape(text):
    return "".join(LATEX_ESCAPES.get(char, char) for char in text)


def render_latex(table, texts, bold):
    width = len(table.metrics)
    lines = [r"\begin{tabular}{l" + "r" * (width * len(table.groups)) + "}", r"\toprule"]
    lines.append(" & " + " & ".join(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(group)}}}"
                                    for group in table.groups) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{2 + g * width}-{1 + (g + 1) * width}}}"
                          for g in range(len(table.groups))))
    lines.append("Method & " + " & ".join(latex_escape(metric_header(metric))
                                          for _ in table.groups for metric in table.metrics) + r" \\")
    lines.append(r"\midrule")
    for r, label in enumerate(table.labels):
        if r == table.fp_rows and r > 0:
            lines.append(r"\midrule")
        cells = [latex_escape(label)]
        for g, group in enumerate(texts[r]):
            for m, value in enumerate(group):
                shown = EMPTY_CELL["latex"] if value is None else latex_escape(value)
                cells.append(rf"\textbf{{{shown}}}" if (r, g, m) in bold else shown)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_csv(table, texts):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(flat_headers(table))
    for r, label in enumerate(table.labels):
        writer.writerow([label] + [EMPTY_CELL["csv"] if value is None else value
                                   for group in texts[r] for value in group])
    return out.getvalue()


def parse_precision(items, runs):
    """--precision values: "N" sets the default decimals, "KEY:N" one metric's; comma lists allowed."""
    precision = {None: 2}
    for item in items:
        for part in filter(None, item.split(",")):
            key, colon, digits = part.rpartition(":")
            if not digits.isdigit() or (colon and not key):
                raise ResultsError(f"--precision '{part}': expected N or METRIC:N, e.g. 2 or metric.ppl:3")
            precision[resolve_key(runs, key) if colon else None] = int(digits)
    return precision


def split_keys(text, runs):
    return [resolve_key(runs, key) for key in text.split(",") if key]


def split_metrics(text, runs):
    """--metrics: column keys, where "zero_shot" stands for each task's headline (acc_norm where the run has it,
    else acc) in the order the runs list their tasks (info.zero_shot.tasks), then the average."""
    metrics = []
    for key in filter(None, text.split(",")):
        if key != "zero_shot":
            metrics.append(resolve_key(runs, key))
            continue
        tasks = next((row.get("info.zero_shot.tasks") for row in runs.rows if row.get("info.zero_shot.tasks")), None)
        if not tasks:
            raise ResultsError(f"--metrics zero_shot: no run in {runs.path} has zero-shot results; run with eval.tasks")
        for task in tasks.split(","):
            metrics.append(resolve_key(runs, headline_metric(task, lambda column: column in runs.columns)))
        metrics.append(resolve_key(runs, "metric.zero_shot.avg"))
    return metrics


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="serq_table", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  tools/serq_table.py results/all.h5 --experiment w4a8_llama\n"
               "  tools/serq_table.py results/all.csv --metrics ppl,bits_per_weight --precision ppl:3 --format latex "
               "--bold-best min --output table.tex\n"
               "  tools/serq_table.py results/all.h5 --experiment ablation_rank "
               "--rows quant.rank,quant.weight_quantizer\n"
               "  tools/serq_table.py results/all.h5 --metrics zero_shot --stderr --precision 3")
    parser.add_argument("merged", help="PREFIX.h5 or PREFIX.csv written by serq-merge")
    parser.add_argument("--rows", help="comma list of keys naming a row besides config.quant.method (default: the "
                                       "method parameters that vary among that method's runs)")
    parser.add_argument("--cols", default="model,setting",
                        help="comma list of keys naming a column group (default: model,setting)")
    parser.add_argument("--metrics", default="metric.ppl",
                        help="comma list of metric columns (default: metric.ppl); 'zero_shot' = every task's "
                             "acc_norm (else acc) and the average")
    parser.add_argument("--precision", action="append", default=[],
                        help="decimals: N for every metric (default 2), or METRIC:N for one; repeatable")
    parser.add_argument("--format", choices=("md", "latex", "csv"), default="md")
    parser.add_argument("--output", help="file to write (default: standard output)")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="keep the runs whose KEY equals VALUE; repeatable")
    parser.add_argument("--experiment", help="keep the runs of this experiment")
    parser.add_argument("--stderr", action="store_true",
                        help="show each metric as 'value ± stderr' where the runs have METRIC_stderr (zero-shot acc, "
                             "acc_norm, kld.mean; the zero-shot average's comes from its tasks')")
    parser.add_argument("--ci", action="store_true",
                        help="show each metric as 'value [low, high]': perplexity and mean KLD with a percentile "
                             "bootstrap over the run's windows (the .h5 input, runs with /windows), other metrics "
                             "value ± z·stderr where the runs have METRIC_stderr")
    parser.add_argument("--ci-level", type=float, default=0.95, help="confidence level of --ci (default 0.95)")
    parser.add_argument("--ci-resamples", type=int, default=10000, help="bootstrap resamples of --ci (default 10000)")
    parser.add_argument("--ci-seed", type=int, default=0, help="bootstrap seed of --ci (default 0)")
    parser.add_argument("--bold-best", choices=("min", "max", "none"), default="none",
                        help="bold the best quantized value of each column (md and latex)")
    return parser.parse_args(argv)


def render(args):
    runs = select_runs(load_runs(args.merged), args.filter, args.experiment)
    row_keys = split_keys(args.rows, runs) if args.rows is not None else None
    precision = parse_precision(args.precision, runs)
    col_keys, metrics = split_keys(args.cols, runs), split_metrics(args.metrics, runs)
    table = build_table(runs, row_keys, col_keys, metrics)
    errors = build_table(runs, row_keys, col_keys, [metric + "_stderr" for metric in metrics]) if args.stderr else None
    intervals = None
    if args.ci:
        if not 0 < args.ci_level < 1 or args.ci_resamples < 1:
            raise ResultsError("--ci-level must be between 0 and 1 and --ci-resamples 1 or more")
        lacking = add_intervals(runs, metrics, args.ci_level, args.ci_resamples, args.ci_seed)
        if lacking:
            print(f"serq_table: {lacking} runs have no per-window sums (/windows; written before serq recorded "
                  f"them): no interval for their perplexity or KLD", file=sys.stderr)
        intervals = build_table(runs, row_keys, col_keys, [CI_PREFIX + metric for metric in metrics])
    texts = format_cells(table, precision, errors, intervals)
    if args.format == "csv":
        return render_csv(table, texts)
    bold = best_cells(table, texts, args.bold_best)
    return render_markdown(table, texts, bold) if args.format == "md" else render_latex(table, texts, bold)


def write_table(args):
    text = render(args)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(text)
    else:
        sys.stdout.write(text)


def main(argv=None):
    args = parse_arguments(argv)
    return run_tool("serq_table", lambda: write_table(args))


if __name__ == "__main__":
    sys.exit(main())
