"""tools/check_layers.py: the repository's include graph runs only downward, and an upward include is caught."""
import pathlib
import sys
import tempfile
import unittest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import check_layers  # noqa: E402


class CheckLayersTest(unittest.TestCase):
    def test_the_repository_has_no_upward_include(self):
        self.assertEqual(check_layers.violations(REPO), [])

    def test_an_upward_include_and_only_it_is_reported(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            (root / "core/linear").mkdir(parents=True)
            (root / "core/backend").mkdir(parents=True)
            (root / "core/linear/quant_linear.h").write_text('#include "core/backend/backend.h"\n')
            (root / "core/backend/backend.h").write_text('#include "core/linear/quant_linear.h"\n')
            found = check_layers.violations(root)
        self.assertEqual(len(found), 1)
        self.assertIn("core/linear/quant_linear.h: includes core/backend/backend.h", found[0])


if __name__ == "__main__":
    unittest.main()
