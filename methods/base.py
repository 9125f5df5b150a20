"""The method contract (DESIGN.md, "The seams")."""


class Method:
    """A recommender under the shared protocol.

    Subclasses set `display_name` (as in the paper's tables) and `kind` ("discriminative" or
    "generative"), and implement:
      fit(ctx):            train on ctx.split.train, early-stop on ctx.split.valid
      rank(ctx, examples): top-k item indices per example, best first -> int array (n, k)
    `ctx` is a benchmark.context.RunContext; methods take everything they need from it.
    """
    name = None
    display_name = None
    kind = "discriminative"

    def __init__(self, config):
        self.config = config

    def fit(self, ctx):
        raise NotImplementedError

    def rank(self, ctx, examples):
        raise NotImplementedError
