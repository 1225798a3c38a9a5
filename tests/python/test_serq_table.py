"""Tests of tools/serq_table.py on a hand-made merged file: exact Markdown, LaTeX and CSV output (FP first, precision,
escaping, multicolumn headers, best values), the .csv and .h5 inputs agreeing, and the one-line errors."""

import contextlib
import io
import math
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "..", "tools")]  # merged_files, and the tools under test

import serq_table  # noqa: E402
from merged_files import write_merged  # noqa: E402

COLUMNS = ["run_id", "experiment", "label", "config.experiment.name", "config.model.path", "config.quant.method",
           "config.quant.w_bits", "config.quant.a_bits", "config.quant.group_size", "config.quant.format",
           "config.quant.weight_quantizer", "config.quant.rank", "config.quant.alpha", "config.calib.samples",
           "metric.ppl", "metric.bits_per_weight", "count.extra_parameters", "info.git_commit"]


def run(run_id, experiment, label, method, a_bits, ppl, bits, **config):
    """One merged row; config: extra quant keys (rank, alpha, weight_quantizer) or calib_samples."""
    row = {"run_id": run_id, "experiment": experiment, "label": label, "config.experiment.name": experiment,
           "config.model.path": "/models/tiny_llama#1", "config.quant.method": method, "config.quant.w_bits": "4",
           "config.quant.a_bits": str(a_bits), "config.quant.group_size": "32", "config.quant.format": "int",
           "config.quant.weight_quantizer": config.get("weight_quantizer", "rtn"),
           "config.calib.samples": config.get("calib_samples", "128"), "metric.ppl": ppl,
           "metric.bits_per_weight": bits, "count.extra_parameters": 0, "info.git_commit": "abc123"}
    for key in ("rank", "alpha"):
        if key in config:
            row[f"config.quant.{key}"] = config[key]
    return row


# Sorted as serq-merge sorts: experiment, label, run_id. The w4a8 experiment has no fp run of its own.
RUNS = [
    run("a1", "w4a4", "fp", "fp", 4, 4.5256, 32.0),
    run("a2", "w4a4", "rtn w4a4 g32", "rtn", 4, 5.7076, 4.514),
    run("a3", "w4a4", "serq w4a4 g32 r16", "serq", 4, 5.3826, 5.573, rank="16"),
    run("a4", "w4a4", "serq w4a4 g32 r16 gptq", "serq", 4, 5.1, 5.573, rank="16", weight_quantizer="gptq"),
    run("a5", "w4a4", "smoothquant w4a4 g32 α0.5", "smoothquant", 4, 5.6693, 4.514, alpha="0.5"),
    run("b1", "w4a8", "rtn w4a8 g32", "rtn", 8, 5.1672, 4.514),
    run("b2", "w4a8", "serq w4a8 g32 r16", "serq", 8, 4.9447, 5.573, rank="16"),
]

MARKDOWN = """\
| Method | tiny_llama#1 W4A4 · PPL | tiny_llama#1 W4A8 · PPL |
|---|---:|---:|
| FP | 4.53 | 4.53 |
| RTN | 5.71 | 5.17 |
| SERQ (r=16) | 5.38 | 4.94 |
| SERQ (r=16) + GPTQ | 5.10 | – |
| SmoothQuant (α=0.5) | 5.67 | – |
"""

LATEX = r"""\begin{tabular}{lrrrr}
\toprule
 & \multicolumn{2}{c}{tiny\_llama\#1 W4A4} & \multicolumn{2}{c}{tiny\_llama\#1 W4A8} \\
\cmidrule(lr){2-3} \cmidrule(lr){4-5}
Method & PPL & Bits/W & PPL & Bits/W \\
\midrule
FP & 4.526 & 32.0 & 4.526 & 32.0 \\
\midrule
RTN & 5.708 & \textbf{4.5} & 5.167 & \textbf{4.5} \\
SERQ (r=16) & 5.383 & 5.6 & \textbf{4.945} & 5.6 \\
SERQ (r=16) + GPTQ & \textbf{5.100} & 5.6 & -- & -- \\
SmoothQuant ($\alpha$=0.5) & 5.669 & \textbf{4.5} & -- & -- \\
\bottomrule
\end{tabular}
"""

CSV = """\
Method,tiny_llama#1 W4A4 · PPL,tiny_llama#1 W4A8 · PPL
FP,4.53,4.53
RTN,5.71,5.17
SERQ (r=16),5.38,4.94
SERQ (r=16) + GPTQ,5.10,
SmoothQuant (α=0.5),5.67,
"""


class SerqTableTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.csv, self.h5 = write_merged(os.path.join(self.directory.name, "merged"), COLUMNS, RUNS)

    def tearDown(self):
        self.directory.cleanup()

    def table(self, *arguments):
        """(exit status, stdout, stderr) of serq_table with these arguments."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = serq_table.main(list(arguments))
        return status, out.getvalue(), err.getvalue()

    def test_markdown_puts_fp_first_and_fills_its_row_from_the_same_model(self):
        self.assertEqual(self.table(self.h5), (0, MARKDOWN, ""))

    def test_csv_and_h5_inputs_give_the_same_table(self):
        self.assertEqual(self.table(self.csv), self.table(self.h5))

    def test_latex_has_booktabs_multicolumn_escaping_precision_and_best_values(self):
        status, text, _ = self.table(self.csv, "--format", "latex", "--metrics", "ppl,metric.bits_per_weight",
                                     "--precision", "3", "--precision", "bits_per_weight:1", "--bold-best", "min")
        self.assertEqual(status, 0)
        self.assertEqual(text, LATEX)

    def test_csv_output_leaves_empty_cells_empty(self):
        path = os.path.join(self.directory.name, "table.csv")
        self.assertEqual(self.table(self.h5, "--format", "csv", "--output", path), (0, "", ""))
        with open(path, encoding="utf-8") as stream:
            self.assertEqual(stream.read(), CSV)

    def test_latex_escape_covers_the_special_characters(self):
        self.assertEqual(serq_table.latex_escape("a_b%c&d#e$f α"), r"a\_b\%c\&d\#e\$f $\alpha$")

    def test_fp_row_prefers_the_fp_run_of_the_same_setting(self):
        runs = RUNS[:5] + [run("b0", "w4a8", "fp", "fp", 8, 4.4, 32.0)] + RUNS[5:]
        write_merged(os.path.join(self.directory.name, "two_fp"), COLUMNS, runs)
        status, text, _ = self.table(os.path.join(self.directory.name, "two_fp.csv"))
        self.assertEqual(status, 0)
        self.assertIn("| FP | 4.53 | 4.40 |\n", text)

    def test_a_cell_with_two_runs_is_an_error_naming_the_key_that_differs(self):
        runs = RUNS + [run("a6", "w4a4", "serq w4a4 g32 r16", "serq", 4, 5.4, 5.573, rank="16", calib_samples="64")]
        write_merged(os.path.join(self.directory.name, "twice"), COLUMNS, runs)
        path = os.path.join(self.directory.name, "twice.h5")
        status, text, error = self.table(path)
        self.assertEqual((status, text), (1, ""))
        self.assertEqual(error, "serq_table: 2 runs fill row 'SERQ (r=16)', column 'tiny_llama#1 W4A4': they differ "
                                "in config.calib.samples; add the key to --rows or keep one run with --filter "
                                "KEY=VALUE or --experiment NAME\n")
        status, text, _ = self.table(path, "--rows", "quant.weight_quantizer,calib.samples", "--filter",
                                     "config.quant.method=serq", "--experiment", "w4a4", "--precision", "3")
        self.assertEqual(status, 0)
        self.assertEqual(text.splitlines()[2:], ["| SERQ (r=16), samples=64 | 5.400 |",
                                                 "| SERQ (r=16), samples=128 | 5.383 |",
                                                 "| SERQ (r=16) + GPTQ, samples=128 | 5.100 |"])

    def test_stderr_shows_value_plus_minus_error_where_the_stderr_column_exists(self):
        columns = COLUMNS + ["metric.copa.acc", "metric.copa.acc_stderr", "metric.zero_shot.avg"]
        runs = [dict(row) for row in RUNS[:3]]
        for row, acc, error in zip(runs, (0.55, 0.5, 0.6), (0.05, 0.0503, 0.0492)):
            row.update({"metric.copa.acc": acc, "metric.copa.acc_stderr": error, "metric.zero_shot.avg": acc})
        write_merged(os.path.join(self.directory.name, "tasks"), columns, runs)
        path = os.path.join(self.directory.name, "tasks.h5")
        status, text, _ = self.table(path, "--metrics", "copa.acc,zero_shot.avg", "--stderr", "--precision", "3",
                                     "--bold-best", "max")
        self.assertEqual(status, 0)
        self.assertEqual(text.splitlines()[2:], ["| FP | 0.550 ± 0.050 | 0.550 |",
                                                 "| RTN | 0.500 ± 0.050 | 0.500 |",
                                                 "| SERQ (r=16) | **0.600 ± 0.049** | **0.600** |"])
        status, text, _ = self.table(path, "--metrics", "copa.acc", "--stderr", "--format", "latex")
        self.assertIn(r"SERQ (r=16) & 0.60 $\pm$ 0.05 \\", text)

    def test_ci_bootstraps_perplexity_over_windows_and_uses_stderr_elsewhere(self):
        columns = COLUMNS + ["metric.copa.acc", "metric.copa.acc_stderr"]
        runs = [dict(row) for row in RUNS[:3]]
        for row in runs:
            row.update({"metric.copa.acc": 0.55, "metric.copa.acc_stderr": 0.05})
        runs[0]["metric.ppl"] = math.exp(1.5)
        runs[1]["metric.ppl"] = math.exp(1.5)
        # FP: every window alike, so every resample gives its value. RTN: two windows of 1.0 and 2.0 nats a token;
        # a quarter of the resamples draw window 0 twice and a quarter window 1 twice, so the 95% interval runs
        # from exp(1.0) to exp(2.0). SERQ has no windows (an older run): no interval, and a note on stderr.
        windows = {"a1": {"tokens": [100, 100], "nll_sum": [150.0, 150.0], "kld_sum": [0.0, 0.0]},
                   "a2": {"tokens": [100, 100], "nll_sum": [100.0, 200.0], "kld_sum": [1.0, 3.0]}}
        write_merged(os.path.join(self.directory.name, "ci"), columns, runs, windows=windows)
        status, text, err = self.table(os.path.join(self.directory.name, "ci.h5"), "--metrics", "ppl,copa.acc",
                                       "--ci", "--precision", "3")
        self.assertEqual(status, 0)
        low, high = 0.55 - 1.959964 * 0.05, 0.55 + 1.959964 * 0.05
        self.assertEqual(text.splitlines()[2:], [f"| FP | 4.482 [4.482, 4.482] | 0.550 [{low:.3f}, {high:.3f}] |",
                                                 f"| RTN | 4.482 [2.718, 7.389] | 0.550 [{low:.3f}, {high:.3f}] |",
                                                 f"| SERQ (r=16) | 5.383 | 0.550 [{low:.3f}, {high:.3f}] |"])
        self.assertIn("1 runs have no per-window sums", err)
        status, _, err = self.table(os.path.join(self.directory.name, "ci.csv"), "--ci")
        self.assertEqual((status, err.count("\n")), (1, 1))
        self.assertIn("need the merged .h5", err)

    def test_zero_shot_metrics_expand_to_each_tasks_headline_and_the_average(self):
        columns = COLUMNS + ["metric.piqa.acc", "metric.piqa.acc_norm", "metric.copa.acc", "metric.zero_shot.avg",
                             "info.zero_shot.tasks"]
        runs = [dict(row) for row in RUNS[:2]]
        for row, value in zip(runs, (0.6, 0.5)):
            row.update({"metric.piqa.acc": value - 0.1, "metric.piqa.acc_norm": value, "metric.copa.acc": value,
                        "metric.zero_shot.avg": value, "info.zero_shot.tasks": "piqa,copa"})
        write_merged(os.path.join(self.directory.name, "zs"), columns, runs)
        status, text, _ = self.table(os.path.join(self.directory.name, "zs.csv"), "--metrics", "zero_shot")
        self.assertEqual(status, 0)
        # One column group: named once, beside "Method", and the columns carry only their metrics.
        self.assertEqual(text.splitlines()[0], "| Method (tiny_llama#1 W4A4) | piqa.acc_norm | copa.acc | Avg |")
        self.assertEqual(text.splitlines()[3], "| RTN | 0.50 | 0.50 | 0.50 |")
        status, text, _ = self.table(os.path.join(self.directory.name, "zs.csv"), "--metrics", "zero_shot",
                                     "--format", "csv")
        self.assertEqual(status, 0)
        self.assertEqual(text.splitlines()[0], "Method (tiny_llama#1 W4A4),piqa.acc_norm,copa.acc,Avg")
        status, _, error = self.table(self.csv, "--metrics", "zero_shot")
        self.assertEqual(status, 1)
        self.assertIn("no run in", error)

    def test_the_zero_shot_average_gets_its_stderr_from_the_tasks_headline_stderrs(self):
        columns = COLUMNS + ["metric.piqa.acc", "metric.piqa.acc_stderr", "metric.piqa.acc_norm",
                             "metric.piqa.acc_norm_stderr", "metric.copa.acc", "metric.copa.acc_stderr",
                             "metric.zero_shot.avg", "info.zero_shot.tasks"]
        runs = [dict(row) for row in RUNS[:2]]
        # FP: both tasks have stderrs, the average's is sqrt(0.03² + 0.04²) / 2 = 0.025 (piqa's acc_norm, not acc).
        runs[0].update({"metric.piqa.acc": 0.5, "metric.piqa.acc_stderr": 0.9, "metric.piqa.acc_norm": 0.6,
                        "metric.piqa.acc_norm_stderr": 0.03, "metric.copa.acc": 0.6, "metric.copa.acc_stderr": 0.04,
                        "metric.zero_shot.avg": 0.6, "info.zero_shot.tasks": "piqa,copa"})
        # RTN: copa's stderr is missing, so its average has none.
        runs[1].update({"metric.piqa.acc": 0.4, "metric.piqa.acc_stderr": 0.9, "metric.piqa.acc_norm": 0.5,
                        "metric.piqa.acc_norm_stderr": 0.03, "metric.copa.acc": 0.5, "metric.zero_shot.avg": 0.5,
                        "info.zero_shot.tasks": "piqa,copa"})
        write_merged(os.path.join(self.directory.name, "zse"), columns, runs)
        for extension in ("csv", "h5"):
            status, text, _ = self.table(os.path.join(self.directory.name, "zse." + extension), "--metrics",
                                         "zero_shot", "--stderr", "--precision", "3")
            self.assertEqual(status, 0)
            self.assertEqual(text.splitlines()[2:], ["| FP | 0.600 ± 0.030 | 0.600 ± 0.040 | 0.600 ± 0.025 |",
                                                     "| RTN | 0.500 ± 0.030 | 0.500 | 0.500 |"])

    def test_unknown_column_and_empty_selection_are_one_line_errors(self):
        status, _, error = self.table(self.h5, "--metrics", "metric.pppl")
        self.assertEqual(status, 1)
        self.assertTrue(error.startswith("serq_table: no column 'metric.pppl'"), error)
        self.assertIn("metric.ppl", error)
        status, _, error = self.table(self.csv, "--filter", "quant.rank=99")
        self.assertEqual(status, 1)
        self.assertEqual(error, f"serq_table: no runs left after --filter quant.rank=99; config.quant.rank takes "
                                f"the values '', '16' in {self.csv}\n")


if __name__ == "__main__":
    unittest.main()
