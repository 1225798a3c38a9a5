#!/usr/bin/python3
"""The activation outlier profile of a model from serq's calibration statistics (a file of
<out>/calibration-cache/, written by any run whose method calibrates): per decoder layer, the largest per-channel
abs-max of a linear layer's input, its median over channels, their ratio and the top channels, as a Markdown table;
with --output, a plot of the ratio per layer and of the per-channel profile of the worst layer (PREFIX.png, .pdf)."""

import argparse
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serq_results import ResultsError, run_tool  # noqa: E402

LAYER = re.compile(r"layers\.(\d+)\.(.+)")


def read_profiles(path, linear):
    """{layer index: per-channel abs-max of the input of `linear` (e.g. mlp.down_proj)} from a calibration cache."""
    try:
        with h5py.File(path, "r") as file:
            if "layers" not in file:
                raise ResultsError(f"{path}: no /layers group; is this a serq calibration cache file?")
            profiles = {}
            for name in file["layers"]:
                match = LAYER.fullmatch(name)
                if match and match.group(2) == linear and "abs_max" in file["layers"][name]:
                    profiles[int(match.group(1))] = np.asarray(file["layers"][name]["abs_max"]).reshape(-1)
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read as HDF5 ({error})") from error
    if not profiles:
        raise ResultsError(f"{path}: no abs-max statistics for '{linear}'; name a linear as 'mlp.down_proj' or "
                           "'self_attn.q_proj' (the calibration must have collected abs-max, e.g. serq or "
                           "smoothquant)")
    return dict(sorted(profiles.items()))


def summary_rows(profiles, top):
    """(layer, max, median, max/median, top channels) per layer."""
    rows = []
    for layer, values in profiles.items():
        median = float(np.median(values))
        order = np.argsort(-values, kind="stable")[:top]
        rows.append((layer, float(values.max()), median, float(values.max()) / median if median > 0 else np.inf,
                     [int(c) for c in order]))
    return rows


def markdown(rows, linear):
    lines = [f"| layer | max \\|x\\| of {linear} input | median over channels | max / median | top channels |",
             "|---|---|---|---|---|"]
    for layer, largest, median, ratio, channels in rows:
        lines.append(f"| {layer} | {largest:.1f} | {median:.2f} | {ratio:.1f} | {', '.join(map(str, channels))} |")
    return "\n".join(lines)


def plot(profiles, rows, linear, prefix):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (by_layer, channels) = plt.subplots(1, 2, figsize=(7.0, 2.6))
    by_layer.bar([r[0] for r in rows], [r[3] for r in rows], color="tab:red")
    by_layer.set_yscale("log")
    by_layer.set_xlabel("decoder layer")
    by_layer.set_ylabel("max / median channel abs-max")
    by_layer.set_title(f"{linear} input outliers", fontsize=9)
    worst = max(rows, key=lambda r: r[3])[0]
    channels.plot(profiles[worst], linewidth=0.6)
    channels.set_yscale("log")
    channels.set_xlabel("input channel")
    channels.set_ylabel("abs-max over calibration tokens")
    channels.set_title(f"layer {worst}, per channel", fontsize=9)
    figure.tight_layout()
    for extension in ("png", "pdf"):
        figure.savefig(f"{prefix}.{extension}", dpi=200)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cache", help="a calibration cache file, <out>/calibration-cache/<key>.h5")
    parser.add_argument("--linear", default="mlp.down_proj",
                        help="which linear's input (default mlp.down_proj; also self_attn.q_proj, self_attn.o_proj, "
                             "mlp.gate_proj, ...)")
    parser.add_argument("--top", type=int, default=3, help="top channels listed per layer (default 3)")
    parser.add_argument("--output", help="also write the plot to PREFIX.png and PREFIX.pdf")
    args = parser.parse_args(argv)

    def action():
        profiles = read_profiles(args.cache, args.linear)
        rows = summary_rows(profiles, args.top)
        print(markdown(rows, args.linear))
        if args.output:
            plot(profiles, rows, args.linear, args.output)

    return run_tool("serq_activations.py", action)


if __name__ == "__main__":
    sys.exit(main())
