"""The weight-only GGUF of `serq-run --export`, read back by llama.cpp's own Python reader (the `gguf` package, as
tools/setup.sh fetches it into build/python/): every tensor equals the values decoded here, independently in numpy,
from the export's model.safetensors and manifest (INT codes, low nibble first, offset by 2^(b-1), times the IEEE-half
scale of their group of 32)."""

import glob
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("SERQ_BINARY_DIR") or os.path.join(ROOT, "build")
ASSETS = os.environ.get("SERQ_ASSETS") or os.path.join(ROOT, "..", "shared")
MODEL = os.path.join(ASSETS, "models", "smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf")


def import_gguf():
    """The gguf package: installed, or the wheel tools/setup.sh keeps in build/python/; None when neither exists."""
    wheels = sorted(glob.glob(os.path.join(BUILD, "python", "gguf-*.whl")))
    if wheels:
        sys.path.insert(0, wheels[-1])
    try:
        import gguf
        return gguf
    except ImportError:
        return None


GGUF = import_gguf()


def read_safetensors(path):
    """{name: numpy array} of a safetensors file, by its spec: u64 header length, JSON header, data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I32": np.int32, "BF16": np.uint16}
    with open(path, "rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(length))
        data = stream.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtypes[entry["dtype"]]).reshape(entry["shape"])
    return tensors


def decode_int(tensors, prefix, descriptor):
    """An INT weight of the export as float32: symmetric codes of `bits` bits, each row's stream starting on a byte,
    value = (code - 2^(bits-1)) * scale of its group."""
    spec = descriptor["spec"]
    rows, cols, bits, group = descriptor["rows"], descriptor["cols"], spec["bits"], spec["group_size"]
    assert spec["symmetric"] and spec["f16_scales"] and not descriptor["divisor"]
    codes = tensors[prefix + ".codes"].reshape(rows, -1)
    if bits == 4:
        unpacked = np.empty((rows, codes.shape[1] * 2), dtype=np.uint8)
        unpacked[:, 0::2], unpacked[:, 1::2] = codes & 15, codes >> 4
        codes = unpacked[:, :cols]
    scales = tensors[prefix + ".scales"].astype(np.float32).reshape(rows, cols // group)
    signed = codes.astype(np.float32) - np.float32(1 << (bits - 1))
    return signed * np.repeat(scales, group, axis=1)


@unittest.skipUnless(os.path.isfile(MODEL), f"serq's assets are not at {ASSETS}")
@unittest.skipUnless(os.access(os.path.join(BUILD, "serq-run"), os.X_OK), f"no serq-run in {BUILD}")
@unittest.skipUnless(GGUF is not None, "the gguf package is not available: tools/setup.sh fetches it into build/python")
class GgufExportTest(unittest.TestCase):
    def export(self, directory, bits):
        config = os.path.join(directory, f"w{bits}.yaml")
        with open(config, "w", encoding="utf-8") as stream:
            stream.write(f"experiment:\n  name: gguf\nmodel:\n  path: {MODEL}\nquant:\n  method: rtn\n  w_bits: {bits}\n"
                         "  a_bits: 16\n  group_size: 32\neval:\n  dataset: wikitext2\n  seq_len: 256\n"
                         "  max_windows: 1\n  layer_error_samples: 0\n")
        exported = os.path.join(directory, f"w{bits}")
        subprocess.run([os.path.join(BUILD, "serq-run"), config, "--quiet", "--out", os.path.join(directory, "out"),
                        "--export", exported], check=True, capture_output=True)
        return exported

    def test_the_gguf_package_reads_the_exported_values(self):
        with tempfile.TemporaryDirectory() as directory:
            for bits, kind in ((4, "Q4_0"), (8, "Q8_0")):
                exported = self.export(directory, bits)
                with open(os.path.join(exported, "serq_manifest.json"), encoding="utf-8") as stream:
                    manifest = json.load(stream)
                tensors = read_safetensors(os.path.join(exported, "model.safetensors"))
                reader = GGUF.GGUFReader(os.path.join(exported, "model.gguf"))
                read = {t.name: t for t in reader.tensors}
                self.assertEqual(reader.fields["general.architecture"].contents(), "llama")
                gguf_names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                              "mlp.down_proj": "ffn_down"}
                checked = 0
                for linear in manifest["linears"]:
                    _, layer, kind_name = linear["name"].split(".", 2)
                    tensor = read[f"blk.{layer}.{gguf_names[kind_name]}.weight"]
                    self.assertEqual(tensor.tensor_type.name, kind)
                    expected = decode_int(tensors, linear["name"] + ".weight", linear["weight"])
                    got = GGUF.quants.dequantize(tensor.data, tensor.tensor_type)
                    np.testing.assert_array_equal(got, expected, err_msg=linear["name"])
                    checked += 1
                self.assertEqual(checked, 30 * 7)
                np.testing.assert_array_equal(read["token_embd.weight"].data, tensors["embed"])
                np.testing.assert_array_equal(read["blk.7.ffn_norm.weight"].data, tensors["layers.7.ffn_norm"])


if __name__ == "__main__":
    unittest.main()
