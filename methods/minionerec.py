"""MiniOneRec (Kong et al., 2025): SFT on sequential recommendation plus item text <-> SID
alignment, then GRPO with the rule + NDCG reward (PROTOCOL section 5; paper Appendix E.5;
../shared/REFERENCES.md). Its SFT model is LASAR's Stage 1 (PROTOCOL 7)."""
from . import register
from .lm.generative import GenerativeMethod


@register("minionerec")
class MiniOneRec(GenerativeMethod):
    display_name = "MiniOneRec"
    cost = 25

    def after_sft(self, ctx, model, tok, codec):
        from benchmark.runner import is_main_process
        if not self.config["rl"]["enabled"] or not is_main_process():
            return model                       # RL runs in one process (README)
        from .lm.grpo import run_grpo
        model, info = run_grpo(self, ctx, model, tok, codec)
        self.fit_info["rl"] = info
        return model
