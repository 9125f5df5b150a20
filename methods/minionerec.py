"""MiniOneRec (Kong et al., 2025): SFT on sequential recommendation plus item text <-> SID
alignment, then GRPO with the rule + NDCG reward (PROTOCOL section 5; paper Appendix E.5;
../shared/REFERENCES.md). Its SFT model is LASAR's Stage 1 (PROTOCOL 7)."""
from benchmark.protocol.dist import is_main_process

from .lm.config import MiniOneRecConfig
from .lm.generative import GenerativeMethod


class MiniOneRec(GenerativeMethod):
    config_class = MiniOneRecConfig

    def after_sft(self, ctx, model, tok, codec, info):
        if not self.config.rl.enabled or not is_main_process():
            return model                       # RL runs in one process (README)
        from .lm.grpo import run_grpo
        model, info["rl"] = run_grpo(self, ctx, model, tok, codec, self.sft_artifact(ctx).key)
        return model
