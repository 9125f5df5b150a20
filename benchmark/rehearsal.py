"""Micro settings (`run --micro`): a profile's whole path at a few users and one or two
optimizer steps per stage, every method, study, Table 5 run and report, to rehearse a profile's
shape where its real sizes would take days: the paper profile on the CPU with a random-weight
folder at Qwen3-0.6B's shape (`backbone rehearsal`). Applied after the profile and before the
command line's --set pairs; the numbers it produces mean nothing, the stage costs it records
(tables/estimates.md) are the point."""

_SFT = {"epochs": 1, "batch_size": 16, "micro_batch": 8, "valid_examples": 6, "eval_every": 0}
_RL = {"epochs": 1, "max_prompts": 4, "batch_size": 4, "micro_batch": 4, "valid_examples": 6}

MICRO = {
    "max_users": 6, "bench_cot.users": 4, "bench_cot.repeats": 1,
    **{f"{m}.epochs": 1 for m in ("sasrec", "gru4rec", "rearec")},
    **{f"{m}.max_align_items": 8 for m in ("minionerec", "lcrec")},
    **{f"{m}.sft.{k}": v for m in ("minionerec", "lcrec", "cot_gream", "latentr3")
       for k, v in _SFT.items()},
    **{f"lasar.stage2.{k}": v for k, v in _SFT.items()},
    **{f"{m}.rl.{k}": v for m in ("minionerec", "lasar", "latentr3") for k, v in _RL.items()},
    "lasar.pool_examples": 8, "cot_gream.pool_examples": 8,
    "lasar.studies.eval_users": 6, "latentr3.studies.eval_users": 6,
    "cot_gream.studies.eval_users": 3, "cot_gream.cot_generation.max_new_tokens": 16,
    "cot_gream.max_cot_tokens": 48,
}


def micro_overrides():
    """MICRO as --set pairs."""
    return [f"{k}={v}" for k, v in MICRO.items()]
