"""The method contract (DESIGN.md, "The seams")."""


class Method:
    """A recommender under the shared protocol.

    Subclasses set `display_name` (as in the paper's tables) and `kind` ("discriminative" or
    "generative"), and implement:
      fit(ctx):            train on ctx.split.train, early-stop on ctx.split.valid
      rank(ctx, examples): top-k item indices per example, best first -> int array (n, k)
      studies(ctx, topk, out_dir): optional extra evaluations after the main row (LASAR's
                           ablations and sweeps); files written to out_dir land in the
                           method's results folder, the returned dict in its manifest
    `ctx` is a benchmark.context.RunContext; methods take everything they need from it.
    `depends_on` names methods whose resolved config this one reads (ctx.config_of) and whose
    config therefore keys this method's results.
    """
    name = None
    display_name = None
    kind = "discriminative"
    depends_on = ()
    cost = 10           # rough training minutes in the cpu profile (from a 10,000-user run): a
                        # parallel run starts the longest chain of dependent methods first

    def __init__(self, config):
        self.config = config

    def fit(self, ctx):
        raise NotImplementedError

    def rank(self, ctx, examples):
        raise NotImplementedError

    def studies(self, ctx, topk, out_dir):
        return {}

    def prediction_fields(self):
        """Extra per-test-user values for predictions.jsonl, {name: (n,) array} (LASAR: the
        number of latent steps each user got)."""
        return {}
