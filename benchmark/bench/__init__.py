"""Speed benchmarks (`python -m benchmark bench ...`): `beam` (our beam search against HF
`generate`), `lasar` (LASAR's decoding against plain decoding), `cot` (Table 4: CoT generation,
direct answer, LASAR and plain decoding on the same test users). `lasar` and `cot` are
functions of a Plan (the pipeline calls `cot` for Table 4); `beam` builds its own random model."""
import numpy as np

PRESETS = {   # name: (hidden, intermediate, layers, heads, kv heads, head dim, vocab)
    "cpu": (128, 384, 2, 4, 2, 32, 2048 + 1024),    # Sports tokenizer: 2,048 BPE + SIDs
    "tiny": (32, 64, 1, 4, 2, 8, None),                # tests only
    "qwen3-0.6b": (1024, 3072, 28, 16, 8, 128, 151936 + 1024),
}


def bench_users(test, n):
    """A fixed-seed sample of n test users (the same for every benchmark)."""
    idx = np.sort(np.random.default_rng(0).choice(len(test), min(n, len(test)), False))
    return test.subset(idx)


def fitted(plan, name):
    """(method, RunContext, fit record) of a planned method, trained through its own fit
    (every artifact is reused from results/, or trained there)."""
    import torch
    if plan.settings.threads:
        torch.set_num_threads(plan.settings.threads)
    ctx = plan.context(name)
    method = plan.method(name)
    return method, ctx, method.fit(ctx)


# --- command-line arguments (here, so that parsing them does not import torch) -------------
def add_beam_arguments(p):
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="model shape: cpu (the cpu profile's backbone) or qwen3-0.6b")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--items", type=int, default=18357, help="catalog size (Sports: 18,357)")
    p.add_argument("--width", type=int, default=50)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)


def _add_method_bench_arguments(p, users, repeats):
    p.add_argument("dataset")
    p.add_argument("--users", type=int, default=users, help="test users (fixed seed)")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--out", help="results root (default: results/)")
    p.add_argument("--json", action="store_true", help="one JSON object")


def add_lasar_arguments(p):
    _add_method_bench_arguments(p, users=2000, repeats=3)


def add_cot_arguments(p):
    _add_method_bench_arguments(p, users=500, repeats=1)
