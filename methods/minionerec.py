"""MiniOneRec (Kong et al., 2025): SFT on sequential recommendation plus item text <-> SID
alignment, then GRPO with the rule + NDCG reward (PROTOCOL section 5; paper Appendix E.5;
../shared/REFERENCES.md). Its SFT model is LASAR's Stage 1 (PROTOCOL 7)."""
from .lm.config import MiniOneRecConfig
from .lm.generative import GenerativeMethod


class MiniOneRec(GenerativeMethod):
    config_class = MiniOneRecConfig

    @classmethod
    def of(cls, ctx):
        """MiniOneRec as another method's context configures it (its `depends_on`)."""
        from . import spec
        return cls(ctx.config_of("minionerec"), spec("minionerec"))

    def stage1(self, ctx, add_tokens):
        """The SFT model as another method's Stage 1 (LASAR, Explicit CoT): reused from its
        artifact (or trained there once), then `add_tokens(model, tok)` adds that method's
        tokens. -> (model, tokenizer, codec, SFT key, SFT info)."""
        model, tok, codec = self.setup(ctx)
        model, info = self.run_sft(ctx, model, tok, codec)
        add_tokens(model, tok)
        return model, tok, codec, self.sft_artifact(ctx).key, info

    def dependents_read(self):
        """Its SFT settings only: LASAR and Explicit CoT start from its SFT model, never from
        its RL model, so its RL settings leave their results as they are."""
        return self.sft_inputs()

    def after_sft(self, ctx, model, tok, codec, info):
        if not self.config.rl.enabled:
            return model
        from .lm.grpo import run_grpo
        model, info["rl"] = run_grpo(self, ctx, model, tok, codec, self.sft_artifact(ctx).key)
        return model
