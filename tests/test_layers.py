"""The house rules that keep the project easy to change (README "Architecture"): imports point
down the layers, at the level of modules and of top-level folders; light commands stay light,
modules stay small, docstrings name real tests."""
import ast
import re
import subprocess
import sys

import pytest

from .conftest import REPO, write_dataset

# top-level package -> its folder; FOLDER_RANK: the folders bottom to top (an import may only
# point at a lower rank or its own folder; methods and reports share a rank and never import
# each other)
PACKAGES = {"protocol": REPO / "protocol", "recdata": REPO / "datasets" / "recdata",
            "methods": REPO / "methods", "reports": REPO / "reports",
            "benchmark": REPO / "benchmark"}
FOLDER = {"protocol": "protocol", "recdata": "datasets", "methods": "methods",
          "reports": "reports", "benchmark": "benchmark"}
FOLDER_RANK = {"protocol": 0, "datasets": 1, "methods": 2, "reports": 2, "benchmark": 3}
# the protocol's leaf modules: standard library (and lazy torch/accelerate) only, nothing else
# of the project
LEAF = {"protocol.errors", "protocol.io", "protocol.progress", "protocol.dist"}


def layer(mod):
    """leaf < protocol < recdata < methods, reports < orchestration; None: not ours."""
    top = mod.split(".")[0]
    if top not in PACKAGES:
        return None
    if mod in LEAF:
        return "leaf"
    if top == "protocol":
        return "protocol"
    if top in ("recdata", "methods", "reports"):
        return top
    return "orchestration"


ALLOWED = {"leaf": {"leaf"},
           "protocol": {"leaf", "protocol"},
           "recdata": {"leaf", "protocol", "recdata"},
           "methods": {"leaf", "protocol", "recdata", "methods"},
           "reports": {"leaf", "protocol", "reports"},
           "orchestration": {"leaf", "protocol", "recdata", "methods", "reports",
                             "orchestration"}}


def project_modules():
    for top, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = [top, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports(source, module, is_package=False):
    """Every module `source` imports, anywhere in it (function-level imports too), with
    relative imports resolved against `module`."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            pkg = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(pkg + ([node.module] if node.module else []))
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)   # submodules imported by name
    return out


def violations(source, module, is_package=False, known=None):
    """(module, imported module) pairs whose import runs back up a layer."""
    own = layer(module)
    bad = []
    for target in sorted(imports(source, module, is_package)):
        if known is not None and target not in known and target.split(".")[0] in PACKAGES:
            target = target.rsplit(".", 1)[0]          # `from pkg import name`: the package
        t = layer(target)
        if t is not None and t not in ALLOWED[own]:
            bad.append((module, target))
    return bad


def test_no_import_runs_up_a_layer():
    mods = dict(project_modules())
    bad = []
    for mod, path in mods.items():
        bad += violations(path.read_text(), mod, path.name == "__init__.py", set(mods))
    assert not bad, "imports that run back up a layer:\n" + "\n".join(f"  {a} -> {b}"
                                                                      for a, b in bad)


def folder_arrows(mods):
    """{(folder, imported folder)} over every import between two top-level folders."""
    arrows = set()
    for mod, path in mods.items():
        src = FOLDER[mod.split(".")[0]]
        for target in imports(path.read_text(), mod, path.name == "__init__.py"):
            top = target.split(".")[0]
            if top in FOLDER and FOLDER[top] != src:
                arrows.add((src, FOLDER[top]))
    return arrows


def upward(arrows):
    return sorted((a, b) for a, b in arrows
                  if FOLDER_RANK[b] >= FOLDER_RANK[a])      # same rank: methods <-> reports


def test_no_import_runs_up_between_top_level_folders():
    """The folder picture is the architecture: protocol/ at the bottom, then datasets/, then
    methods/ and reports/ side by side, benchmark/ on top; no arrow points up or sideways."""
    arrows = folder_arrows(dict(project_modules()))
    assert not upward(arrows), f"folder imports that run up or sideways: {upward(arrows)}"
    assert ("benchmark", "protocol") in arrows and ("datasets", "protocol") in arrows


def test_the_folder_check_catches_an_upward_arrow():
    assert upward({("protocol", "datasets")}) and upward({("datasets", "benchmark")})
    assert upward({("methods", "reports")}) and upward({("reports", "methods")})
    assert not upward({("benchmark", "methods"), ("methods", "protocol")})


@pytest.mark.parametrize("module,source", [
    ("methods.lasar.method", "from benchmark.runner import run_plan"),       # method -> top
    ("methods.lasar.method", "def f():\n    from benchmark import pipeline"),
    ("reports.table1", "import methods"),                                    # report -> method
    ("protocol.config", "from benchmark.plan import Plan"),                 # protocol -> top
    ("protocol.sids", "import methods.lasar"),
    ("protocol.sids", "from recdata import load_dataset"),                 # protocol -> data
    ("recdata.split", "from methods.base import FitRecord"),               # data -> method
    ("protocol.io", "from .artifact import Artifact"),                     # leaf -> protocol
])
def test_the_layer_check_catches_an_upward_import(module, source):
    assert violations(source, module)


def test_light_commands_do_not_import_torch(tmp_path):
    """Listing methods, dataset statistics and rewriting tables never load torch."""
    write_dataset(tmp_path / "data", n_users=10, n_items=20)
    for argv in (["methods"], ["data", "stats", "toy", "--data-dir", str(tmp_path / "data")],
                 ["tables", "toy", "--profile", "smoke", "--out", str(tmp_path / "out")]):
        code = ("import sys; from benchmark.cli import main; rc = main(sys.argv[1:]); "
                "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
                "('torch', 'transformers', 'recbole')); "
                "print('HEAVY', heavy); raise SystemExit(rc)")
        r = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "HEAVY []" in r.stdout, (argv, r.stdout[-500:])


def test_modules_stay_small():
    big = [(str(p.relative_to(REPO)), n) for _, p in project_modules()
           if (n := len(p.read_text().splitlines())) > 400]
    assert not big, f"modules over 400 lines: {big}"


def test_no_two_orchestration_functions_share_a_name():
    """One name for one thing: no two module-level functions or classes of benchmark/ share a
    name."""
    seen = {}
    for mod, p in project_modules():
        if mod.split(".")[0] != "benchmark":
            continue
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                seen.setdefault(node.name, []).append(mod)
    assert not {k: v for k, v in seen.items() if len(v) > 1}


def _project_texts():
    for _, p in project_modules():
        yield p, p.read_text()
    for p in [REPO / "README.md", *REPO.glob("*/README.md"), *REPO.glob("*/*/README.md"),
              *REPO.glob("reports/*.md"), *REPO.glob("protocol/profiles/*.yaml"),
              *REPO.glob("methods/configs/*.yaml"), REPO / "run_all.sh"]:
        yield p, p.read_text()


def test_docstrings_name_tests_that_exist():
    missing = {(str(p.relative_to(REPO)), m) for p, text in _project_texts()
               for m in re.findall(r"tests/(test_\w+\.py)", text)
               if not (REPO / "tests" / m).is_file()}
    assert not missing, f"references to test files that do not exist: {sorted(missing)}"


def test_the_project_speaks_of_itself_not_of_its_issues():
    hits = {(str(p.relative_to(REPO)), m) for p, text in _project_texts()
            for m in re.findall(r"\b[Ii]ssues? \d+", text)}
    assert not hits, f"references to issue numbers: {sorted(hits)}"


def test_every_registered_method_has_a_schema_matching_its_yaml():
    """Each method's YAML keys are exactly its config dataclass's fields (no default twice, no
    key without a type)."""
    import dataclasses

    import methods
    from protocol.schema import build
    for name in methods.names():
        cls = methods.get(name).config_class
        assert dataclasses.is_dataclass(cls), name
        build(cls, methods.default_config(name), name)        # raises on unknown or missing


def test_pyproject_packages_every_package():
    """A package missing from pyproject.toml would be left out of a non-editable install."""
    import tomllib
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {m for m, p in project_modules() if p.name == "__init__.py"}
    assert found == listed
