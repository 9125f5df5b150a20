"""The lines `python -m benchmark bench ...` prints for each benchmark's result (--json prints
the result itself)."""


def beam_text(res):
    from methods.lm.bench import ARCH_NAMES
    su = res["setup"]
    yield (f"beam search, width {su['beam_width']}, {su['prompts']} prompts of "
           f"{su['prompt_tokens']} tokens ({su['head_tokens']} shared), {su['items']:,} items, "
           f"{su['model_parameters']:,}-parameter {ARCH_NAMES[su['arch']]} ({su['preset']}, "
           f"vocab {su['vocab']:,}, {su['tokenizer']} tokenizer), {su['device']} {su['dtype']}, "
           f"{su['threads']} threads")
    for label, key in (("HF generate + prefix_allowed_tokens_fn", "generate_samples_per_s"),
                       ("ours (tensor trie, shared KV cache)", "ours_samples_per_s"),
                       ("bare forward passes (prompt + 3 steps)", "bare_forward_samples_per_s"),
                       ("bare forward passes (prompt + 4 steps)",
                        "bare_forward_4steps_samples_per_s")):
        yield f"  {label:<39} {res[key]:8.2f} samples/s"
    yield (f"  speedup vs generate {res['speedup_vs_generate']:.1f}x; "
           f"time / bare forward {res['ratio_to_bare_forward']:.2f}x")


def sft_text(res):
    from methods.lm.bench import ARCH_NAMES
    yield (f"SFT step (forward + backward + clip + AdamW), batch {res['batch']}, "
           f"{res['parameters']:,}-parameter {ARCH_NAMES[res['arch']]} ({res['preset']}, vocab "
           f"{res['vocab']:,}, {res['tokenizer']} tokenizer), {res['device']} "
           f"({res['device_name']}) {res['dtype']}, {res['threads']} threads, median of "
           f"{res['repeats']} after {res['warmup']} warm-up")
    yield (f"  tokens per step       {res['tokens_per_step']:,} (head {res['head_tokens']} "
           f"once + rows; {res['answer_tokens_per_step']} answer tokens; mean prompt "
           f"{res['mean_prompt_tokens']:.1f} tokens)")
    yield f"  seconds per step      {res['seconds_per_step']:.4f}"
    yield f"  tokens/s              {res['tokens_per_s']:,.0f}"
    yield f"  samples/s             {res['samples_per_s']:,.2f}"
    if res["mfu"] is None:
        why = ("a CPU" if res["device"] == "cpu" else
               f"no known peak for '{res['device_name']}' (pass --peak-flops)")
        yield f"  MFU                   n/a ({why})"
    else:
        yield (f"  MFU                   {100 * res['mfu']:.1f}% (6N rule; matmuls done: "
               f"{100 * res['mfu_matmul']:.1f}%) of a {res['peak_flops'] / 1e12:.0f} TFLOP/s "
               f"bf16 peak ({res['peak_flops_source']})")
    yield "  losses                " + " ".join(f"{l:.4f}" for l in res["losses"])
    ep = res.get("epoch")
    if ep:
        yield (f"  one SFT epoch of {ep['dataset']} ({ep['profile']} profile, MiniOneRec's "
               f"tasks, batch {ep['batch_size']}, micro-batch {ep['micro_batch']}, "
               f"{ep['steps_per_epoch']:,} steps, mean history {ep['mean_history']:.2f}):")
        for task, o in ep["tasks"].items():
            yield (f"    {task:<9} {o['examples']:>8,} examples, prompt "
                   f"{o['mean_prompt_tokens']:6.1f} + answer {o['mean_answer_tokens']:4.1f} "
                   f"tokens; {o['tokens']:>12,} tokens, "
                   f"{o['positions']:>12,} positions with padding")
        yield (f"    total     {ep['examples']:>8,} examples, {ep['tokens']:,} tokens, "
               f"{ep['positions']:,} positions ({ep['unshared_tokens']:,.0f} without the shared "
               f"head); at this run's tokens/s: {ep['hours_at_this_rate']:.2f} h per epoch "
               f"(extrapolated)")


def lasar_text(res):
    yield (f"{res['users']} test users, {res['repeats']} repeats (median), {res['device']}, "
           f"{res['processes']} process(es) of {res['threads']} threads, mean latent steps "
           f"{res['mean_latent_steps']:.2f}")
    yield f"  plain decoding (MiniOneRec's)  {res['plain_ms_per_user']:8.3f} ms/user"
    yield f"  LASAR (latent loop + beam)     {res['lasar_ms_per_user']:8.3f} ms/user"
    yield f"  LASAR / plain                  {res['lasar_over_plain']:8.3f}x"
    if "latentr3_ms_per_user" in res:
        yield f"  LatentR3 (thought + beam)      {res['latentr3_ms_per_user']:8.3f} ms/user"
        yield f"  LatentR3 / plain               {res['latentr3_over_plain']:8.3f}x"


def cot_text(res):
    ms = res["ms_per_user"]
    yield (f"{res['users']} test users of {res['dataset']} ({res['profile']}), "
           f"{res['repeats']} repeat(s) (median), {res['device']}, {res['processes']} "
           f"process(es) of {res['threads']} threads; "
           f"mean latent steps {res['mean_latent_steps']:.2f}, mean CoT reasoning tokens "
           f"{res['mean_reasoning_tokens']:.1f} (cap {res['cot_max_new_tokens']})")
    for k, label in (("plain", "plain decoding (MiniOneRec's)"), ("lasar", "LASAR"),
                     ("cot_direct", "Explicit CoT, direct answer"),
                     ("cot_generation", "Explicit CoT, CoT generation"),
                     ("latentr3", "LatentR3")):
        if k not in ms:
            continue
        m = res["metrics"][k]
        yield (f"  {label:<30} {ms[k]:9.2f} ms/user   N@10 {m['NDCG@10']:.4f}  "
               f"HR@10 {m['HR@10']:.4f}")
    yield (f"  CoT generation / LASAR {res['cot_generation_over_lasar']:.2f}x; "
           f"LASAR / plain {res['lasar_over_plain']:.3f}x")
