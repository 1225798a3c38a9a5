"""Reading merged serq result tables (serq-merge's PREFIX.h5 or PREFIX.csv) for serq_table.py and serq_plot.py:
loading, key names, run selection, and the human-readable names of methods, settings and metrics."""

import csv
import difflib
import math
import os
import sys
from dataclasses import dataclass

METHOD = "config.quant.method"
WEIGHT_QUANTIZER = "config.quant.weight_quantizer"
RANK = "config.quant.rank"
EXPERIMENT_NAME = "config.experiment.name"

# Keys that configure a method rather than the setting it runs in (quant.* keys with method_parameter in
# core/config/config_schema.cpp, plus the main-weight rounding); a run's config holds only those its method uses.
PARAMETER_KEYS = (WEIGHT_QUANTIZER, RANK, "config.quant.alpha", "config.quant.factor_bits",
                  "config.quant.requant_intermediate", "config.quant.residual_order", "config.quant.seed")
# Parameters a label always shows (a paper names SERQ's rank and SmoothQuant's α even when they never vary).
HEADLINE_KEYS = (RANK, "config.quant.alpha")
# Keys summed up by the derived "setting" column ("W4A4 g32 MXFP4").
SETTING_KEYS = ("config.quant.w_bits", "config.quant.a_bits", "config.quant.group_size", "config.quant.format")
# The zero-shot average's standard error, derived from its tasks' where a run lacks it.
ZERO_SHOT_AVG_STDERR = "metric.zero_shot.avg_stderr"
# Columns computed from the config: the model's directory name and the quantization setting.
DERIVED_KEYS = ("model", "setting")

METHOD_NAMES = {"fp": "FP", "rtn": "RTN", "smoothquant": "SmoothQuant", "gptq": "GPTQ", "lorc": "LoRC",
                "lqer": "LQER", "l2qer": "L2QER", "quarot": "QuaRot", "serq": "SERQ"}
# (table header, axis label) of the usual metrics; any other column shows its name.
METRIC_NAMES = {"metric.ppl": ("PPL", "Perplexity"),
                "metric.bits_per_weight": ("Bits/W", "Bits per weight"),
                "metric.mean_nll": ("NLL", "Mean NLL (nats/token)"),
                "count.extra_parameters": ("Extra params", "Extra parameters"),
                "metric.kld.mean": ("KLD", "Mean KL divergence vs FP (nats)"),
                "metric.kld.p99": ("KLD p99", "99th percentile KL divergence vs FP (nats)"),
                "metric.kld.top1_agreement": ("Top-1", "Top-1 agreement with FP"),
                "metric.zero_shot.avg": ("Avg", "Zero-shot average")}


class ResultsError(Exception):
    """A one-line, user-facing error: the key or file at fault and the fix."""


@dataclass
class Runs:
    """The runs of a merged file: metric.* and count.* values are floats (NaN = missing), the rest strings."""
    path: str
    columns: list
    rows: list  # one dict column -> value per run, in file order


def is_numeric(column):
    return column.startswith(("metric.", "count."))


def load_runs(path):
    """Reads PREFIX.h5 or PREFIX.csv (chosen by extension) and adds the derived model and setting columns."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".h5", ".hdf5", ".csv"):
        raise ResultsError(f"{path}: expected a merged .h5 or .csv file from serq-merge")
    if not os.path.isfile(path):
        raise ResultsError(f"{path}: no such file; make it with serq-merge RESULTS_DIR --out PREFIX")
    columns, rows = _read_csv(path) if extension == ".csv" else _read_h5(path)
    missing = [column for column in ("run_id", "experiment", METHOD) if column not in columns]
    if missing:
        raise ResultsError(f"{path}: no {', '.join(missing)} column; is it a serq-merge output?")
    for row in rows:
        row["model"] = os.path.basename(row.get("config.model.path", "").rstrip("/"))
    add_setting(rows)
    derived = list(DERIVED_KEYS)
    if add_zero_shot_average_stderr(rows) and ZERO_SHOT_AVG_STDERR not in columns:
        derived.append(ZERO_SHOT_AVG_STDERR)
    return Runs(path, columns + derived, rows)


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        columns = next(reader, None)
        if not columns:
            raise ResultsError(f"{path}: empty file; expected a header row from serq-merge")
        rows = []
        for line, record in enumerate(reader, start=2):
            if len(record) != len(columns):
                raise ResultsError(f"{path}:{line}: {len(record)} fields, the header has {len(columns)}")
            rows.append({column: _numeric(text, path, column) if is_numeric(column) else text
                         for column, text in zip(columns, record)})
    return columns, rows


def _numeric(text, path, column):
    try:
        return float(text) if text else math.nan
    except ValueError:
        raise ResultsError(f"{path}: {column} holds '{text}', not a number") from None


def _read_h5(path):
    try:
        import h5py  # only .h5 input needs it
    except ImportError:
        raise ResultsError(f"{path}: reading .h5 needs h5py (Debian: apt-get install python3-h5py); or give the "
                           f".csv") from None
    with h5py.File(path, "r") as file:
        if "runs" not in file or "columns" not in file["runs"].attrs:
            raise ResultsError(f"{path}: no /runs group with a 'columns' attribute; is it a serq-merge output?")
        names = file["runs"].attrs["columns"]
        columns = (names.decode() if isinstance(names, bytes) else str(names)).split("\n")
        data = {}
        for column in columns:
            if column not in file["runs"]:
                raise ResultsError(f"{path}: /runs/{column} is listed in 'columns' but missing")
            dataset = file["runs"][column]
            if h5py.check_string_dtype(dataset.dtype):
                data[column] = list(dataset.asstr()[()])
            else:
                data[column] = [float(value) for value in dataset[()]]
    count = len(data[columns[0]]) if columns else 0
    return columns, [{column: data[column][i] for column in columns} for i in range(count)]


def read_window_scores(path):
    """{run_id: (tokens, nll_sum, kld_sum)} of the runs with per-window sums (/windows/<run_id>/ of a merged .h5), as
    numpy arrays; runs written before serq recorded them are absent."""
    if os.path.splitext(path)[1].lower() not in (".h5", ".hdf5"):
        raise ResultsError(f"{path}: intervals over windows need the merged .h5 (it holds /windows); give PREFIX.h5")
    import h5py
    import numpy
    scores = {}
    with h5py.File(path, "r") as file:
        for run_id, group in file.get("windows", {}).items():
            scores[run_id] = tuple(numpy.asarray(group[name][()], dtype=float)
                                   for name in ("tokens", "nll_sum", "kld_sum"))
    return scores


def add_setting(rows):
    """Sets each row's "setting": W{w}A{a}, + g{group} when the group varies among the quantized runs, + MXFP4."""
    quantized = [row for row in rows if row.get(METHOD) != "fp"] or rows
    groups_vary = len({row.get("config.quant.group_size", "") for row in quantized}) > 1
    for row in rows:
        text = f"W{row.get('config.quant.w_bits', '?')}A{row.get('config.quant.a_bits', '?')}"
        group = row.get("config.quant.group_size", "")
        if groups_vary and group:
            text += " per-channel" if group == "channel" else f" g{group}"
        if row.get("config.quant.format") == "mxfp4":
            text += " MXFP4"
        row["setting"] = text


def _number(value):
    return value if isinstance(value, float) and not math.isnan(value) else None


def headline_metric(task, present):
    """A task's headline column, as the zero-shot average takes it: acc_norm where present(column), else acc."""
    norm = f"metric.{task}.acc_norm"
    return norm if present(norm) else f"metric.{task}.acc"


def add_zero_shot_average_stderr(rows):
    """Sets metric.zero_shot.avg_stderr where a run lacks it: the average's standard error from its tasks'
    (sqrt(sum of se^2) / n, the tasks being independent samples), each task's headline being acc_norm where the run
    has it, else acc, as the average itself. Returns whether any row has it."""
    found = False
    for row in rows:
        if _number(row.get(ZERO_SHOT_AVG_STDERR)) is None and row.get("info.zero_shot.tasks"):
            errors = []
            for task in row["info.zero_shot.tasks"].split(","):
                headline = headline_metric(task, lambda column: _number(row.get(column)) is not None)
                errors.append(_number(row.get(headline + "_stderr")))
            if None not in errors:
                row[ZERO_SHOT_AVG_STDERR] = math.sqrt(sum(e * e for e in errors)) / len(errors)
        found = found or _number(row.get(ZERO_SHOT_AVG_STDERR)) is not None
    return found


def resolve_key(runs, key):
    """The column a user's key names: exact, or without its config./metric./count./info. prefix."""
    if key in runs.columns:
        return key
    for prefix in ("config.", "metric.", "count.", "info."):
        if prefix + key in runs.columns:
            return prefix + key
    close = difflib.get_close_matches(key, runs.columns, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; the .csv header lists the columns"
    raise ResultsError(f"no column '{key}' in {runs.path}{hint}")


def select_runs(runs, filters=(), experiment=None):
    """The runs matching --experiment NAME and every --filter KEY=VALUE, as a new Runs (settings recomputed)."""
    conditions = [("experiment", experiment, f"--experiment {experiment}")] if experiment else []
    for text in filters:
        key, equals, value = text.partition("=")
        if not equals or not key:
            raise ResultsError(f"--filter '{text}': expected KEY=VALUE, e.g. --filter config.quant.rank=16")
        conditions.append((resolve_key(runs, key), value, f"--filter {text}"))
    rows = runs.rows
    for column, value, option in conditions:
        kept = [row for row in rows if _matches(row.get(column, ""), value, column)]
        if not kept:
            present = sorted({text_of(row.get(column, "")) for row in rows})
            raise ResultsError(f"no runs left after {option}; {column} takes the values "
                               f"{', '.join(repr(p) for p in present[:10])} in {runs.path}")
        rows = kept
    rows = [dict(row) for row in rows]
    add_setting(rows)
    return Runs(runs.path, runs.columns, rows)


def _matches(actual, wanted, column):
    if is_numeric(column):
        try:
            return float(wanted) == actual
        except ValueError:
            raise ResultsError(f"--filter {column}={wanted}: {column} is a number") from None
    return actual == wanted


def text_of(value):
    """A value as text, for grouping and messages: numbers by repr, NaN as empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def shared_values(rows, keys):
    """key -> value for each key whose value is the same non-empty one in every row."""
    shared = {}
    for key in keys:
        values = {text_of(row.get(key, "")) for row in rows}
        if len(values) == 1 and "" not in values:
            shared[key] = values.pop()
    return shared


def varying_keys(rows, keys):
    """The keys (in the given order) that take more than one value among the rows."""
    return [key for key in keys if len({text_of(row.get(key, "")) for row in rows}) > 1]


def differing_keys(rows, columns):
    """The columns that tell apart runs which were expected to be one: config keys first, then provenance."""
    ignored = ("run_id", "label", "setting")
    candidates = [c for c in columns if c not in ignored and not is_numeric(c) and not c.startswith("info.")]
    keys = varying_keys(rows, candidates) or varying_keys(rows, [c for c in columns if c.startswith("info.")])
    return keys or ["run_id"]


def describe(values, keys):
    """A human-readable name such as "SERQ (r=16) + GPTQ" or "L2QER (r=16, f=4), W4A8" from key -> value:
    the method, then the parameters among keys, then any other key among keys."""
    method = values.get(METHOD, "")
    name = METHOD_NAMES.get(method, method)
    parameters, suffix, extras = [], "", []
    for key in keys:
        if key not in values or key == METHOD:
            continue
        value = values[key]
        if key == WEIGHT_QUANTIZER:
            if value != "rtn" and method != value:
                suffix = " + " + value.upper()
        elif key == RANK:
            parameters.append(f"r={value}")
        elif key == "config.quant.alpha":
            parameters.append(f"α={value}")
        elif key == "config.quant.factor_bits":
            parameters.append(f"f={value}")
        elif key == "config.quant.requant_intermediate":
            parameters.append("requant" if value == "true" else "no requant")
        elif key == "config.quant.residual_order":
            parameters.append(f"{value} order")
        elif key == "config.quant.seed":
            parameters.append(f"seed={value}")
        elif key == "config.quant.format":
            extras.append(value.upper())
        elif key in DERIVED_KEYS:
            extras.append(value)
        else:
            extras.append(f"{key.rsplit('.', 1)[-1]}={value}")
    text = name + (f" ({', '.join(parameters)})" if parameters else "") + suffix
    if extras:
        text = f"{text}, {', '.join(extras)}" if name else ", ".join(extras)
    return text


def label_keys(keys):
    """Keys to name lines or rows by: config.model.path shown as "model", the setting keys as one "setting"."""
    shown = []
    for key in keys:
        key = "model" if key == "config.model.path" else "setting" if key in SETTING_KEYS else key
        if key not in shown:
            shown.append(key)
    return shown


def metric_header(column):
    return METRIC_NAMES.get(column, (column.split(".", 1)[-1],))[0]


def metric_axis_label(column):
    names = METRIC_NAMES.get(column)
    return names[1] if names else column.split(".", 1)[-1].replace("_", " ")


def run_tool(program, action):
    """Runs action(); a ResultsError or OSError becomes one line "<program>: <error>" on stderr and exit status 1."""
    try:
        action()
    except (ResultsError, OSError) as error:
        print(f"{program}: {error}", file=sys.stderr)
        return 1
    return 0
