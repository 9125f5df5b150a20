import pytest

import methods
from protocol.config import Config
from protocol.errors import BenchmarkError


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
    """Every profile file (cpu-full too), each method's section typed and checked as a plan
    builds it."""
    from protocol.config import PROFILE_DIR, profile_names
    from protocol.schema import build
    files = sorted(f.stem for f in PROFILE_DIR.glob("*.yaml") if f.stem != "defaults")
    assert profile_names() == files and {"cpu", "cpu-full", "paper", "smoke", "smol"} <= set(files)
    for p in files:
        c = _cfg(p)
        for m in methods.names():
            assert c.method(m)
            build(methods.get(m).config_class, c.method(m), m)     # raises on a bad value
        assert set(c.shared["enabled"]) <= set(methods.names())


@pytest.mark.parametrize("over,msg", [
    (["max_users=abc"], "'max_users' must be int, got 'abc'"),          # a null default
    (["lm.dtype=float16"], "'lm.dtype' must be one of 'float32', 'bfloat16'"),
    (["lasar.stage2.align=l2"], "'lasar.stage2.align' must be one of 'kl', 'cosine'"),
    (["lasar.inference.force_n=9"], "'lasar.inference.force_n' = 9 is out of range"),
    (["minionerec.sft.micro_batch=1024"], "'minionerec.sft.micro_batch' = 1024 is out of range: "
                                          "must be at most batch_size"),
    (["rearec.variants=[erl, xrl]"], "'rearec.variants[1]' must be one of 'erl', 'prl'"),
])
def test_schema_checks_types_and_choices_before_any_work(tmp_path, over, msg):
    """Values the YAML defaults cannot type-check (null defaults, choices, cross-key rules)
    are checked by the config dataclasses when the plan is built."""
    from benchmark.plan import Plan, RunRequest

    from .conftest import write_dataset
    write_dataset(tmp_path / "data", n_users=10, n_items=20)
    with pytest.raises(BenchmarkError) as e:
        Plan(RunRequest("toy", "smoke", ["minionerec", "lasar", "rearec"], tmp_path / "data",
                        tmp_path / "out", over))
    assert msg in str(e.value)
    assert not (tmp_path / "out").exists()


def test_typed_sections_are_the_resolved_yaml():
    """The dataclass views hold exactly the layered values (defaults < profile < --set)."""
    from protocol.schema import build, to_dict
    from methods.lasar.config import LasarConfig
    c = _cfg("smoke", ["lasar.stage2.lr=0.5", "lm.hidden_size=96"])
    typed = build(LasarConfig, c.method("lasar"), "lasar")
    assert typed.stage2.lr == 0.5 and typed.stage2.epochs == 1          # --set, profile
    assert typed.rl.group_size == methods.default_config("lasar")["rl"]["group_size"]
    assert to_dict(typed) == c.method("lasar")
    assert c.settings.lm.hidden_size == 96 and c.settings.max_users == 300


def test_a_bad_value_names_the_file_it_came_from(tmp_path, monkeypatch):
    """Every key remembers its layer: a bad value names the profile file, the method's own
    defaults file, or the --set pair (a later layer wins), with key, value and range."""
    import shutil

    import yaml

    from protocol import config as config_mod
    from protocol.schema import ConfigKeyError
    from methods.lasar.config import LasarConfig
    shutil.copy(config_mod.PROFILE_DIR / "defaults.yaml", tmp_path / "defaults.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(
        {"seed": -3, "methods": {"lasar": {"rl": {"ema_decay": 2.0}}}}))
    monkeypatch.setattr(config_mod, "PROFILE_DIR", tmp_path)
    lasar_yaml = tmp_path / "lasar.yaml"
    lasar_defaults = {**methods.default_config("lasar"), "n_max": 0}
    files = {**methods.default_files(), "lasar": lasar_yaml}

    def error(overrides, defaults=None):
        with pytest.raises(ConfigKeyError) as e:
            c = Config("mine", overrides, {**methods.all_default_configs(), **(defaults or {})},
                       files)
            c.typed("lasar", LasarConfig)
        return str(e.value)
    assert error([]) == (f"{tmp_path / 'mine.yaml'}: 'seed' = -3 is out of range: must be an "
                         "integer in [0, 4294967295]")
    assert error(["seed=2"]).startswith(f"{tmp_path / 'mine.yaml'} (methods.lasar): "
                                        "'lasar.rl.ema_decay' = 2.0 is out of range")
    assert error(["seed=2", "lasar.rl.ema_decay=0.5"], {"lasar": lasar_defaults}).startswith(
        f"{lasar_yaml}: 'lasar.n_max' = 0 is out of range: must be an integer >= 1")
    assert error(["seed=2", "lasar.rl.ema_decay=3"]).startswith(
        "--set lasar.rl.ema_decay=3: 'lasar.rl.ema_decay' = 3.0")
    assert error(["seed=-9"]).startswith("--set seed=-9: 'seed' = -9")     # --set beats the file


def test_set_values_parse_as_yaml_with_words_kept():
    """--set values are YAML (numbers, lists, true/false), but YAML 1.1's yes/no/on/off stay
    words: `--set lm.mixed_precision=no` is the string 'no', not False."""
    from protocol.config import parse_overrides
    got = parse_overrides(["lm.mixed_precision=no", "a=true", "b=3", "c=[1, 2]", "d=off",
                           "e=1.0e-3"])
    assert got == {"lm": {"mixed_precision": "no"}, "a": True, "b": 3, "c": [1, 2],
                   "d": "off", "e": 1e-3}
