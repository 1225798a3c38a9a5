"""Writes small merged result files in serq-merge's documented format (PREFIX.csv and PREFIX.h5), for the tests of
tools/serq_table.py and tools/serq_plot.py."""

import csv
import math

import h5py
import numpy as np


def write_merged(prefix, columns, runs, layers=None, windows=None):
    """runs: one dict per run (a missing column is a missing value); layers: run_id -> {dataset name: values};
    windows: run_id -> {"tokens": [...], "nll_sum": [...], "kld_sum": [...]}."""
    numeric = [column.startswith(("metric.", "count.")) for column in columns]
    with open(f"{prefix}.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(columns)
        for run in runs:
            writer.writerow([_csv_text(run.get(column)) for column in columns])
    with h5py.File(f"{prefix}.h5", "w") as file:
        group = file.create_group("runs")
        group.attrs["columns"] = "\n".join(columns)
        for column, is_number in zip(columns, numeric):
            if is_number:
                group[column] = np.array([math.nan if run.get(column) is None else float(run[column]) for run in runs])
            else:
                group.create_dataset(column, data=[run.get(column, "") for run in runs], dtype=h5py.string_dtype())
        for run_id, datasets in (layers or {}).items():
            for name, values in datasets.items():
                if name == "name":
                    file.create_dataset(f"layers/{run_id}/name", data=values, dtype=h5py.string_dtype())
                else:
                    file[f"layers/{run_id}/{name}"] = np.array(values)
        for run_id, datasets in (windows or {}).items():
            for name, values in datasets.items():
                file[f"windows/{run_id}/{name}"] = np.array(values)
    return f"{prefix}.csv", f"{prefix}.h5"


def _csv_text(value):
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)
