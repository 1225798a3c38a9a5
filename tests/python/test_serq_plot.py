"""Tests of tools/serq_plot.py on a hand-made merged file: the Pareto front on hand-made points, short layer names,
the rank, pareto and layers plots writing valid PNG and PDF files, and the one-line errors."""

import contextlib
import io
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "..", "tools")]  # merged_files, and the tools under test

import serq_plot  # noqa: E402
from merged_files import write_merged  # noqa: E402

COLUMNS = ["run_id", "experiment", "label", "config.model.path", "config.quant.method", "config.quant.w_bits",
           "config.quant.a_bits", "config.quant.group_size", "config.quant.format", "config.quant.weight_quantizer",
           "config.quant.rank", "metric.ppl", "metric.bits_per_weight"]
LAYER_NAMES = [f"layers.{block}.{part}" for block in range(2)
               for part in ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj")]


def run(run_id, method, ppl, bits, rank="", weight_quantizer="rtn"):
    label = " ".join(filter(None, [method, "w4a4 g32" if method != "fp" else "", f"r{rank}" if rank else "",
                                   "gptq" if weight_quantizer == "gptq" else ""]))
    return {"run_id": run_id, "experiment": "ablation", "label": label, "config.model.path": "/models/tiny",
            "config.quant.method": method, "config.quant.w_bits": "4", "config.quant.a_bits": "4",
            "config.quant.group_size": "32", "config.quant.format": "int",
            "config.quant.weight_quantizer": weight_quantizer, "config.quant.rank": rank, "metric.ppl": ppl,
            "metric.bits_per_weight": bits}


RUNS = [run("f", "fp", 4.5, 32.0), run("t", "rtn", 5.7, 4.5)] + [
    run(f"s{rank}{quantizer[0]}", "serq", ppl, 4.5 + rank / 16, str(rank), quantizer)
    for quantizer, ppls in (("rtn", (5.6, 5.4, 5.1)), ("gptq", (5.3, 5.2, 5.0)))
    for rank, ppl in zip((0, 8, 16), ppls)]
LAYERS = {run_id: {"name": LAYER_NAMES, "output_rel_error": [0.05 * scale * (i + 1) for i in range(8)],
                   "weight_rel_error": [0.02 * scale] * 8, "output_qsnr_db": [20.0 + i for i in range(8)]}
          for run_id, scale in (("s16r", 1.0), ("s16g", 0.5))}


class SerqPlotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.TemporaryDirectory()
        cls.csv, cls.h5 = write_merged(os.path.join(cls.directory.name, "merged"), COLUMNS, RUNS, LAYERS)

    @classmethod
    def tearDownClass(cls):
        cls.directory.cleanup()

    def plot(self, *arguments):
        """(exit status, stderr) of serq_plot with these arguments."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = serq_plot.main(list(arguments))
        return status, err.getvalue()

    def assert_figures(self, prefix):
        with open(f"{prefix}.png", "rb") as png, open(f"{prefix}.pdf", "rb") as pdf:
            png_bytes, pdf_bytes = png.read(), pdf.read()
        self.assertEqual(png_bytes[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(png_bytes[12:16], b"IHDR")
        self.assertGreater(len(png_bytes), 1000)
        self.assertTrue(pdf_bytes.startswith(b"%PDF"))
        self.assertGreater(len(pdf_bytes), 1000)

    def test_pareto_front_keeps_the_points_nothing_beats_in_both_bits_and_metric(self):
        points = [(4.0, 5.0), (4.0, 5.2), (5.0, 4.9), (6.0, 4.95), (8.0, 4.7), (8.0, 4.7), (3.0, 6.0), (9.0, 4.7)]
        # (4, 5.2) loses to (4, 5.0); (6, 4.95) to (5, 4.9); (9, 4.7) to (8, 4.7); equal points both stay.
        self.assertEqual(serq_plot.pareto_front(points), [6, 0, 2, 4, 5])
        self.assertEqual(serq_plot.pareto_front([]), [])

    def test_short_layer_names(self):
        self.assertEqual([serq_plot.short_layer_name(name) for name in
                          ("layers.0.self_attn.q_proj", "model.layers.12.mlp.down_proj", "lm_head", "other")],
                         ["0.q", "12.down", "head", "other"])

    def test_rank_plot_writes_png_and_pdf(self):
        prefix = os.path.join(self.directory.name, "figures", "rank")
        self.assertEqual(self.plot("rank", self.h5, "--output", prefix), (0, ""))
        self.assert_figures(prefix)

    def test_pareto_plot_reads_the_csv(self):
        prefix = os.path.join(self.directory.name, "pareto")
        self.assertEqual(self.plot("pareto", self.csv, "--output", prefix, "--title", ""), (0, ""))
        self.assert_figures(prefix)

    def test_layers_plot_of_chosen_runs(self):
        prefix = os.path.join(self.directory.name, "layers")
        self.assertEqual(self.plot("layers", self.h5, "--runs", "s16r,s16g", "--output", prefix), (0, ""))
        self.assert_figures(prefix)

    def test_errors_are_one_line_on_stderr_with_status_1(self):
        prefix = os.path.join(self.directory.name, "never")
        cases = [(("layers", self.csv), "serq_plot: layers needs the merged .h5 (the .csv has no per-layer data): "
                                        f"{self.csv}\n"),
                 (("layers", self.h5, "--runs", "f"), f"serq_plot: --runs: run 'f' has no /layers/f in {self.h5} "
                                                      "(fp runs and runs without diagnostics have none)\n"),
                 (("rank", self.h5, "--metric", "metric.nll"), f"serq_plot: no column 'metric.nll' in {self.h5}; "
                                                               "did you mean metric.ppl?\n"),
                 (("pareto", self.h5, "--experiment", "w4a8"),
                  f"serq_plot: no runs left after --experiment w4a8; experiment takes the values 'ablation' in "
                  f"{self.h5}\n")]
        for arguments, message in cases:
            self.assertEqual(self.plot(*arguments, "--output", prefix), (1, message))
        self.assertFalse(os.path.exists(f"{prefix}.png"))


if __name__ == "__main__":
    unittest.main()
