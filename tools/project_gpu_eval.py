#!/usr/bin/env python3
"""A projection, not a measurement: perplexity evaluation time of LLaMA-2-7B (or SmolLM2-135M) on one H100 (SXM)
through serq's CUDA backend, for the old op seam (host matrices in and out of every op, float weights uploaded at
every call) and the new one (tensors resident on the device, the weights uploaded once, token ids in and per-row
results out).

Bytes come from the ops' shapes as the two seams move them (the new seam's are what the transfer ledger counts;
tests/test_transfers.cpp checks that count on the CPU); time = max(compute, HBM) + PCIe, at NVIDIA's stated rates.

  tools/project_gpu_eval.py [--shape llama2-7b|smollm2-135m] [--windows N] [--seq 2048] [--batch 1]
"""
import argparse

# Widths from the models' config.json: hidden, FFN, layers, key/value width (GQA), vocabulary, tied lm_head.
SHAPES = {
    "llama2-7b": dict(dim=4096, ffn=11008, layers=32, kv=4096, vocab=32000, tied=False),
    "smollm2-135m": dict(dim=576, ffn=1536, layers=30, kv=192, vocab=49152, tied=True),
}
DIM = FFN = LAYERS = KV = VOCAB = 0
TIED = False
# H100 SXM5, NVIDIA's datasheet: PCIe Gen5 x16 64 GB/s a direction, HBM3 3.35 TB/s, FP32 (no tensor cores: the
# backend runs cuBLAS FP32 with TF32 off) 67 TFLOP/s.
PCIE, HBM, FP32 = 64e9, 3.35e12, 67e12
F = 4  # bytes of a float


def layer_weights():
    return 2 * DIM * DIM + 2 * DIM * KV + 3 * DIM * FFN  # q, o; k, v; gate, up, down


def old_seam_bytes_per_batch(rows):
    """Host↔device bytes of one forward of `rows` tokens on the old seam: every op copies its inputs up and its
    output down, each linear uploads its float weight at every call, the embedding table and lm_head go up once a
    forward, and the logits come down and go up again for the nll op, in chunks of 1024 rows."""
    x, h, kv = rows * DIM * F, rows * FFN * F, rows * KV * F
    per_layer = (
        (x + DIM * F + x)                 # rms_norm: x and γ up, out down
        + (x + x + 2 * kv)                # q, k, v: the input up once, three outputs down
        + 2 * x + 2 * kv                  # rope of q and of k: up and down
        + (x + 2 * kv + x)                # attention: q, k, v up, out down
        + (x + x)                         # o_proj: input up, output down
        + (2 * x + x)                     # add: h and x up, h down
        + (x + DIM * F + x)               # rms_norm
        + (x + 2 * h)                     # gate, up: the input up, two outputs down
        + (2 * h + h)                     # swiglu: gate and up up, gate down
        + (h + x)                         # down_proj: input up, output down
        + (2 * x + x)                     # add
        + layer_weights() * F)            # every float weight, at every call
    embed = VOCAB * DIM * F + rows * 4 + x  # table and ids up, rows down
    head = VOCAB * DIM * F + x + 3 * rows * VOCAB * F  # weight and input up, logits down, logits up for nll
    return LAYERS * per_layer + embed + head + x  # + the final norm's output


def new_seam_bytes(rows, batches):
    """The weights once (float32 as the backend holds them), then per batch the ids in and one nll row out."""
    weights = (LAYERS * layer_weights() + (1 if TIED else 2) * VOCAB * DIM) * F + (2 * LAYERS + 1) * DIM * F
    return weights + batches * (rows * 4 + rows * 12)


def flops_per_batch(rows, seq):
    linear = 2 * rows * (LAYERS * layer_weights() + VOCAB * DIM)
    attention = LAYERS * 2 * 2 * (rows // seq) * seq * (seq + 1) // 2 * DIM  # causal QKᵀ and PV, useful work
    return linear + attention


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama2-7b")
    parser.add_argument("--windows", type=int, default=148, help="windows of WikiText-2 (148 at 2048)")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1, help="windows per forward (eval.batch_size)")
    a = parser.parse_args()
    global DIM, FFN, LAYERS, KV, VOCAB, TIED
    shape = SHAPES[a.shape]
    DIM, FFN, LAYERS, KV, VOCAB, TIED = (shape[k] for k in ("dim", "ffn", "layers", "kv", "vocab", "tied"))
    rows, batches = a.batch * a.seq, -(-a.windows // a.batch)
    compute = batches * flops_per_batch(rows, a.seq) / FP32
    # Resident weights are read from HBM once a forward; with ample FLOPs per weight compute dominates.
    hbm = batches * (LAYERS * layer_weights() + VOCAB * DIM) * F / HBM
    device = max(compute, hbm)
    old = batches * old_seam_bytes_per_batch(rows)
    new = new_seam_bytes(rows, batches)
    print(f"{a.shape}, {a.windows} windows of {a.seq}, {a.batch} a forward, one H100 SXM (projection)")
    print(f"| seam | host↔device bytes | PCIe s | device s (FP32 {FP32 / 1e12:.0f} TFLOP/s) | total s |")
    print("|---|---|---|---|---|")
    for name, moved in (("old: host matrices per op", old), ("new: resident tensors", new)):
        print(f"| {name} | {moved / 1e9:,.1f} GB | {moved / PCIE:,.1f} | {device:,.1f} | {moved / PCIE + device:,.1f} |")


if __name__ == "__main__":
    main()
