#!/usr/bin/env python3
"""Checks serq's include graph: a file includes only its own folder and the folders below it in LAYERS, so that no
include runs from a lower folder to a higher one (and the folders cannot form a circle).

  tools/check_layers.py [REPO]      exit 0 when clean; else one line per offending include, and exit 1
"""
import pathlib
import re
import sys

# Lowest first. A folder may include itself and any folder before it.
LAYERS = ["core/common", "core/quant", "core/formats", "core/tokenizer", "core/data", "core/config", "core/linear",
          "core/backend", "core/model", "core/calib", "core/eval", "methods", "experiments"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def layer_of(path):
    """The LAYERS entry a repository path belongs to, or None (tests, tools)."""
    for layer in LAYERS:
        if path == layer or path.startswith(layer + "/"):
            return layer
    return None


def violations(repo):
    found = []
    for source in sorted(repo.rglob("*")):
        if source.suffix not in (".h", ".cpp", ".cu", ".cuh") or not source.is_file():
            continue
        relative = source.relative_to(repo).as_posix()
        own = layer_of(relative)
        if own is None:
            continue
        for included in INCLUDE.findall(source.read_text(encoding="utf-8")):
            target = layer_of(included)
            if target is not None and LAYERS.index(target) > LAYERS.index(own):
                found.append(f"{relative}: includes {included}, but {own} sits below {target}")
    return found


def main():
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    found = violations(repo)
    for line in found:
        print(line)
    if not found:
        print(f"check_layers: no include runs upward across {len(LAYERS)} folders")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
