import pytest

import methods
from benchmark.protocol.config import Config
from benchmark.protocol.errors import BenchmarkError


def _cfg(profile="smoke", overrides=()):
    return Config(profile, list(overrides), methods.all_default_configs())


def test_precedence_defaults_profile_method_cli():
    base = methods.default_config("sasrec")
    c = _cfg("smoke")
    assert c.method("sasrec")["hidden_size"] == base["hidden_size"]     # defaults
    assert c.shared["max_users"] == 300                                  # profile
    assert c.method("sasrec")["epochs"] == 3                             # method section
    c = _cfg("smoke", ["sasrec.epochs=7", "seed=5", "eval.ks=[1,2]"])
    assert c.method("sasrec")["epochs"] == 7 and c.shared["seed"] == 5  # command line
    assert c.shared["eval"]["ks"] == [1, 2]
    assert c.shared["eval"]["bootstrap_resamples"] == 1000               # nested keys kept


@pytest.mark.parametrize("over,msg", [
    (["sasrec.epochs=three"], "'epochs' must be int"),
    (["sids.levls=3"], "unknown configuration key 'sids.levls'"),
    (["nosuch.epochs=3"], "unknown configuration key 'nosuch'"),
    (["seed"], "expected KEY=VALUE"),
])
def test_errors(over, msg):
    with pytest.raises(BenchmarkError, match=msg):
        _cfg("smoke", over).method("sasrec")


def test_unknown_profile_lists_choices():
    with pytest.raises(BenchmarkError, match="choose one of: cpu, cpu-full, paper, smoke, smol"):
        _cfg("gpu")


def test_every_profile_resolves_every_method():
    for p in ("smoke", "cpu", "smol", "paper"):
        c = _cfg(p)
        for m in methods.names():
            assert c.method(m)
        assert set(c.shared["enabled"]) <= set(methods.names())
