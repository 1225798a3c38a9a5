#!/usr/bin/env python3
"""Writes a Hugging Face LLaMA checkpoint of a real model's SHAPE with RANDOM BF16 weights, for benchmarks only.

The weights are N(0, 0.02^2) (the LLaMA initialization), the norms ones, and config.json carries
"serq_random_weights": true so nothing mistakes it for a trained model. Tensors are written one at a time in chunks,
so memory stays small; a full LLaMA-2-7B shape is 13.5 GB on disk.

  /usr/bin/python3 tools/make_random_llama.py --shape llama2-7b --layers 4 --out /tmp/llama2-7b-random-4l
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

SHAPES = {  # hidden, FFN, layers, heads, KV heads, vocab, context, RoPE theta
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rope_theta=10000.0),
}
CHUNK = 1 << 24  # values per random draw


def tensors(config):
    """(name, shape) of every tensor in the order they are written."""
    d, h, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kv = d // config["num_attention_heads"] * config["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (v, d))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (d,)), (p + "self_attn.q_proj.weight", (d, d)),
                (p + "self_attn.k_proj.weight", (kv, d)), (p + "self_attn.v_proj.weight", (kv, d)),
                (p + "self_attn.o_proj.weight", (d, d)), (p + "post_attention_layernorm.weight", (d,)),
                (p + "mlp.gate_proj.weight", (h, d)), (p + "mlp.up_proj.weight", (h, d)),
                (p + "mlp.down_proj.weight", (d, h))]
    return out + [("model.norm.weight", (d,)), ("lm_head.weight", (v, d))]


def to_bf16(values):
    """float32 -> bfloat16 bits, round to nearest even (no NaN/Inf occur in N(0, 0.02^2))."""
    bits = values.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_tensor(out, name, shape, rng):
    count = int(np.prod(shape))
    if name.endswith("norm.weight"):
        out.write(to_bf16(np.ones(count, dtype=np.float32)).tobytes())
        return
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        out.write(to_bf16(rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)).tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama2-7b")
    parser.add_argument("--layers", type=int, default=0, help="decoder layers (0: the shape's own count)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", required=True, help="the checkpoint directory to write")
    args = parser.parse_args()

    config = dict(SHAPES[args.shape])
    if args.layers < 0 or args.layers > config["num_hidden_layers"]:
        sys.exit(f"make_random_llama: --layers {args.layers} is outside 0..{config['num_hidden_layers']}")
    if args.layers:
        config["num_hidden_layers"] = args.layers
    config.update(model_type="llama", architectures=["LlamaForCausalLM"], rms_norm_eps=1e-5, torch_dtype="bfloat16",
                  tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, serq_random_weights=True,
                  serq_shape=args.shape)
    os.makedirs(args.out, exist_ok=True)

    header, offset = {}, 0
    for name, shape in tensors(config):
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt", "serq_random_weights": "true", "seed": str(args.seed)}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the data region starts 8-byte aligned

    rng = np.random.default_rng(args.seed)
    path = os.path.join(args.out, "model.safetensors")
    with open(path + ".tmp", "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for i, (name, shape) in enumerate(tensors(config)):
            write_tensor(out, name, shape, rng)
            print(f"\r{i + 1}/{len(header) - 1} tensors", end="", file=sys.stderr, flush=True)
    os.replace(path + ".tmp", path)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"\n{path}: {offset / 1e9:.2f} GB of random BF16 weights, {config['num_hidden_layers']} layers",
          file=sys.stderr)


if __name__ == "__main__":
    main()
