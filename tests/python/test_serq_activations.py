"""Tests of tools/serq_activations.py on a hand-made calibration cache: the per-layer maxima, medians, ratios and top
channels, the plot files, and the one-line errors."""

import contextlib
import io
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import serq_activations  # noqa: E402


def write_cache(path):
    with h5py.File(path, "w") as file:
        for layer, spike in ((0, 4.0), (1, 300.0)):
            group = file.create_group(f"layers/layers.{layer}.mlp.down_proj")
            values = np.array([[1.0, 2.0, spike, 3.0, 2.0]])  # median 2, max `spike` at channel 2
            group.create_dataset("abs_max", data=values)
            file.create_group(f"layers/layers.{layer}.self_attn.q_proj").create_dataset("abs_max", data=values * 0.5)


class ActivationsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cache = os.path.join(self.dir.name, "cache.h5")
        write_cache(self.cache)

    def tearDown(self):
        self.dir.cleanup()

    def run_tool(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = serq_activations.main(list(args))
        return status, out.getvalue(), err.getvalue()

    def test_table_by_hand(self):
        status, out, _ = self.run_tool(self.cache, "--top", "2")
        self.assertEqual(status, 0)
        lines = out.strip().splitlines()
        self.assertEqual(lines[2], "| 0 | 4.0 | 2.00 | 2.0 | 2, 3 |")
        self.assertEqual(lines[3], "| 1 | 300.0 | 2.00 | 150.0 | 2, 3 |")
        status, out, _ = self.run_tool(self.cache, "--linear", "self_attn.q_proj", "--top", "1")
        self.assertIn("| 1 | 150.0 | 1.00 | 150.0 | 2 |", out)

    def test_plot_files(self):
        prefix = os.path.join(self.dir.name, "profile")
        status, _, _ = self.run_tool(self.cache, "--output", prefix)
        self.assertEqual(status, 0)
        with open(prefix + ".png", "rb") as png, open(prefix + ".pdf", "rb") as pdf:
            self.assertEqual(png.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertEqual(pdf.read(5), b"%PDF-")

    def test_errors_are_one_line(self):
        status, _, err = self.run_tool(self.cache, "--linear", "mlp.up_proj")
        self.assertEqual(status, 1)
        self.assertIn("no abs-max statistics for 'mlp.up_proj'", err)
        self.assertEqual(err.count("\n"), 1)
        missing = os.path.join(self.dir.name, "missing.h5")
        status, _, err = self.run_tool(missing)
        self.assertEqual(status, 1)
        self.assertIn(missing, err)


if __name__ == "__main__":
    unittest.main()
