"""Throughput and memory of the two StreamGuard models (prints figures, asserts nothing).

    python benchmarks/bench_models.py [--device cpu|cuda] [--bf16] [--iters N] [--transformer-preset small|base]

Measures, on random inputs of the shapes the models see:
- GNN forward on one batch of 1,000 nodes / 5,000 typed edges (20 graphs; target > 10 it/s);
- transformer forward on 32 x 512 tokens (target > 5 it/s on GPU; CPU reported too);
- training samples/s of each model (GNN: 32 graphs of 50 nodes; transformer: 16 x 256 tokens);
- peak memory: process max RSS and, on CUDA, torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training_entry"))

from models import EnhancedSQLIntentTransformer, EnhancedTaintFlowGNN  # noqa: E402
from models.transformer import small_roberta_config  # noqa: E402

PRESETS = {  # transformer encoder sizes: the offline default and a CodeBERT-base-sized encoder
    "small": {"vocab_size": 8000, "hidden_size": 128, "num_layers": 2, "num_heads": 4},
    "base": {"vocab_size": 50265, "hidden_size": 768, "num_layers": 12, "num_heads": 12},
}


def graph_sizes() -> tuple[int, int]:
    """Node feature width and relation count of the shipped featurizer (fallback when absent)."""
    try:
        from streamguard.core import graphs

        return graphs.NUM_NODE_KINDS + graphs.NODE_FEAT_DIM, graphs.NUM_EDGE_TYPES
    except (ImportError, AttributeError):
        return 64, 8


def random_graph_batch(num_graphs: int, nodes_per_graph: int, edges_per_graph: int, in_channels: int,
                       num_relations: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch of random graphs with edges kept inside their own graph."""
    n = num_graphs * nodes_per_graph
    offsets = torch.arange(num_graphs).repeat_interleave(edges_per_graph) * nodes_per_graph
    edge_index = torch.randint(0, nodes_per_graph, (2, num_graphs * edges_per_graph)) + offsets
    return {
        "x": torch.randn(n, in_channels, device=device),
        "edge_index": edge_index.to(device),
        "batch": torch.arange(num_graphs).repeat_interleave(nodes_per_graph).to(device),
        "edge_type": torch.randint(0, num_relations, (edge_index.size(1),), device=device),
        "y": torch.randint(0, 2, (num_graphs,), device=device),
    }


def timed(fn, iters: int, device: torch.device, warmup: int = 2) -> float:
    """Seconds per call of `fn` after warm-up (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def bench_gnn(device, ctx, iters: int) -> None:
    in_ch, rels = graph_sizes()
    model = EnhancedTaintFlowGNN(in_ch, hidden_channels=64, num_relations=rels, num_layers=3).to(device)
    g = random_graph_batch(20, 50, 250, in_ch, rels, device)
    model.eval()

    @torch.no_grad()
    def forward():
        with ctx():
            model(g["x"], g["edge_index"], g["batch"], g["edge_type"])

    s = timed(forward, iters, device)
    print(f"gnn forward   1000 nodes / 5000 edges (20 graphs): {1 / s:8.1f} it/s  ({s * 1e3:.1f} ms)  target > 10 it/s")

    t = random_graph_batch(32, 50, 250, in_ch, rels, device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        with ctx():
            logits, _ = model(t["x"], t["edge_index"], t["batch"], t["edge_type"])
        loss = torch.nn.functional.cross_entropy(logits.float(), t["y"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    s = timed(step, iters, device)
    print(f"gnn train     32 graphs x 50 nodes per step:       {32 / s:8.1f} samples/s")


def bench_transformer(device, ctx, iters: int, preset: str) -> None:
    p = PRESETS[preset]
    cfg = small_roberta_config(p["vocab_size"], hidden_size=p["hidden_size"], num_layers=p["num_layers"],
                               num_heads=p["num_heads"], max_length=512)
    model = EnhancedSQLIntentTransformer(cfg).to(device)
    params = sum(x.numel() for x in model.parameters()) / 1e6
    ids = torch.randint(5, p["vocab_size"], (32, 512), device=device)
    mask = torch.ones_like(ids)
    model.eval()

    @torch.no_grad()
    def forward():
        with ctx():
            model(ids, mask)

    s = timed(forward, iters, device)
    print(f"transformer[{preset}, {params:.1f}M] forward 32 x 512:     {1 / s:8.2f} it/s  ({s * 1e3:.0f} ms)  "
          "target > 5 it/s on GPU")

    tids = torch.randint(5, p["vocab_size"], (16, 256), device=device)
    tmask = torch.ones_like(tids)
    y = torch.randint(0, 2, (16,), device=device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with ctx():
            logits, _, _ = model(tids, tmask)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    s = timed(step, max(1, iters // 2), device, warmup=1)
    print(f"transformer[{preset}] train 16 x 256 per step:         {16 / s:8.1f} samples/s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--transformer-preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--only", choices=("gnn", "transformer"), default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    if args.bf16 and device.type == "cuda":
        def ctx():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        ctx = nullcontext
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {name}; bf16: {bool(args.bf16 and device.type == 'cuda')}; torch {torch.__version__}")
    if args.only in (None, "gnn"):
        bench_gnn(device, ctx, args.iters)
    if args.only in (None, "transformer"):
        bench_transformer(device, ctx, args.iters, args.transformer_preset)
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if device.type == "cuda":
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
