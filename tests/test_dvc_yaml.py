"""dvc.yaml: every stage depends on the code it runs, and its data paths come from params.yaml.

A stage's code is derived, not listed by hand: its ``cmd`` names ``python -m pipeline.X``; the
project modules that module imports (``import`` / ``from ... import`` anywhere in a file, lazy ones
included, and module names given as strings, as to ``importlib.import_module``) are followed
transitively over the project's packages. Each such file must be under one of the stage's deps (the
file itself or a directory above it); a package ``__init__.py`` that holds only a docstring is
exempt. Conversely a code dep that contains none of those files is reported as unneeded (editing
it would re-run the stage for nothing).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "uvgen", "model", "eval")
CMD_MODULE = re.compile(r"python\d*(?:\.\d+)?\s+-m\s+(pipeline(?:\.\w+)+)")
INTERPOLATION = re.compile(r"\$\{\s*([\w.\[\]-]+)\s*\}")


def module_file(name: str) -> Path | None:
    """The file of project module ``name`` (a package's ``__init__.py``), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_names(path: Path) -> set[str]:
    """Dotted names a file imports (and ``from m import x`` also as ``m.x``), plus string literals
    that name a project module (dynamic imports), plus every module of its package where it
    makes a ``uvgen.plugins.Registry`` of a package (the formats and methods registries: every
    module of that package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative import: resolve against the file's package
                package = path.relative_to(ROOT).parent.parts
                base = ".".join(
                    package[: len(package) - node.level + 1] + tuple(node.module.split("."))
                )
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", node.value)
        ):
            names.add(node.value)
    if "Registry(" in path.read_text():  # uvgen.plugins.Registry("pkg", ...) imports all of pkg
        for name in list(names):
            folder = ROOT.joinpath(*name.split("."))
            if (folder / "__init__.py").is_file():
                names.update(f"{name}.{p.stem}" for p in folder.glob("*.py"))
    return names


def code_closure(module: str) -> set[Path]:
    """Every project file ``module`` runs: itself, its parent packages, what they import,
    transitively."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_names(path))
    return seen


def is_trivial(path: Path) -> bool:
    """A package ``__init__.py`` holding nothing but a docstring."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


ITEM = re.compile(r"\$\{\s*(key|item)((?:\.[\w-]+)*)\s*\}")


def _lookup(params: dict, dotted: str) -> object:
    node: object = params
    for key in dotted.split("."):
        node = node[key]  # type: ignore[index]
    return node


def _substitute(node: object, key: str, item: object) -> object:
    """``node`` (a ``do`` block) with ``${key}`` and ``${item...}`` written out, in values and in
    mapping keys. An item that is a ``${section}`` reference stays one: ``${item.out_dir}`` becomes
    ``${section.out_dir}``, so the params tests below still see where a path comes from."""

    def text(match: re.Match) -> str:
        if match.group(1) == "key":
            return key
        ref = INTERPOLATION.fullmatch(item) if isinstance(item, str) else None
        if ref:
            return "${" + ref.group(1) + match.group(2) + "}"
        value = item
        for field in match.group(2).split(".")[1:]:
            value = value[field]  # type: ignore[index]
        return str(value)

    if isinstance(node, str):
        return ITEM.sub(text, node)
    if isinstance(node, list):
        return [_substitute(v, key, item) for v in node]
    if isinstance(node, dict):
        return {_substitute(k, key, item): _substitute(v, key, item) for k, v in node.items()}
    return node


def expand_stages(stages: dict, params: dict) -> dict:
    """``foreach`` stages written out one per key, named ``NAME@KEY`` as DVC names them: over a
    mapping in dvc.yaml, or over a params section (``${baselines}``: ``${item.x}`` is then
    ``${baselines.KEY.x}``)."""
    out = {}
    for name, stage in stages.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        items = stage["foreach"]
        if isinstance(items, str):
            section = INTERPOLATION.fullmatch(items).group(1)  # type: ignore[union-attr]
            items = {k: f"${{{section}.{k}}}" for k in _lookup(params, section)}  # type: ignore[union-attr]
        elif isinstance(items, list):
            items = {str(v): v for v in items}
        for key, item in items.items():
            out[f"{name}@{key}"] = _substitute(stage["do"], str(key), item)
    return out


def load_dvc() -> tuple[dict, dict]:
    """dvc.yaml with its ``foreach`` stages expanded, and params.yaml."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    dvc["stages"] = expand_stages(dvc["stages"], params)
    return dvc, params


def interpolate(text: str, params: dict) -> str:
    def value(match: re.Match) -> str:
        node: object = params
        for key in re.findall(r"[^.\[\]]+", match.group(1)):
            node = node[int(key)] if isinstance(node, list) else node[key]  # type: ignore[index]
        return str(node)

    return INTERPOLATION.sub(value, text)


def _entries(items: list) -> list[str]:
    return [next(iter(item)) if isinstance(item, dict) else item for item in items or []]


def stage_code(stage: dict, params: dict) -> tuple[str, set[Path]]:
    match = CMD_MODULE.search(interpolate(stage["cmd"], params))
    assert match, f"cmd does not run python -m pipeline.X: {stage['cmd']}"
    return match.group(1), {p for p in code_closure(match.group(1)) if not is_trivial(p)}


def _is_code_dep(dep: str) -> bool:
    return dep.split("/")[0] in PACKAGES


STAGES = load_dvc()[0]["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_all_the_code_it_runs(name: str) -> None:
    dvc, params = load_dvc()
    stage = dvc["stages"][name]
    module, files = stage_code(stage, params)
    deps = [ROOT / interpolate(d, params) for d in _entries(stage.get("deps"))]
    missing = sorted(
        str(f.relative_to(ROOT)) for f in files if not any(f == d or d in f.parents for d in deps)
    )
    assert not missing, f"stage {name} ({module}) runs code it does not depend on: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_has_no_unneeded_code_deps(name: str) -> None:
    dvc, params = load_dvc()
    stage = dvc["stages"][name]
    _, files = stage_code(stage, params)
    unneeded = []
    for dep in _entries(stage.get("deps")):
        path = ROOT / interpolate(dep, params)
        if not _is_code_dep(dep) or path.suffix not in ("", ".py"):
            continue  # data, and non-Python files a stage reads (pipeline/dask.yaml)
        if not any(f == path or path in f.parents for f in files):
            unneeded.append(dep)
    assert not unneeded, f"stage {name}: deps that hold none of its code: {unneeded}"


def _path_params(params: dict) -> dict[str, str]:
    """params.yaml keys whose values are paths (strings with a '/'), as ``section.key``."""
    out = {}

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(f"{prefix}[{i}]", value)
        elif isinstance(node, str) and "/" in node:
            out[prefix] = node.rstrip("/")

    walk("", params)
    return out


@pytest.mark.parametrize("name", sorted(STAGES))
def test_data_paths_come_from_params(name: str) -> None:
    """A dep or output written literally where params.yaml holds its path (or a folder above it)
    would not follow a change of that parameter: it must be a ``${...}``."""
    dvc, params = load_dvc()
    stage = dvc["stages"][name]
    path_values = _path_params(params)
    literal = []
    for kind in ("deps", "outs", "metrics", "plots"):
        for entry in _entries(stage.get(kind)):
            if _is_code_dep(entry) or "${" in entry:
                continue
            for key, value in path_values.items():
                if entry == value or entry.startswith(value + "/"):
                    literal.append(f"{kind}: {entry} (params {key})")
    assert not literal, f"stage {name}: write these as ${{...}}: {literal}"
    for entry in [
        e for kind in ("deps", "outs", "metrics", "plots") for e in _entries(stage.get(kind))
    ]:
        interpolate(entry, params)  # every ${...} names an existing key


def test_closure_follows_lazy_and_dynamic_imports(tmp_path: Path) -> None:
    """The derivation itself: a lazy import inside a function and a module named in a string
    count."""
    files = code_closure("pipeline.predict")
    rel = {str(f.relative_to(ROOT)) for f in files}
    assert "model/inference.py" in rel  # imported inside a function
    assert "model/baselines/predict.py" in rel  # importlib.import_module("model.baselines.predict")
    assert "pipeline/stage.py" in rel  # the __main__ block's run(main)
    assert "eval/figures.py" not in rel


def _tracks(stage: dict, key: str) -> bool:
    """Whether a stage's ``params`` list tracks the params.yaml key ``key`` (``a.b.c``): an entry
    naming it or a section above it (DVC's rule), in the default params file or a named one."""
    entries: list[str] = []
    for item in stage.get("params") or []:
        entries += [item] if isinstance(item, str) else [k for v in item.values() for k in v or []]
    return any(key == e or key.startswith(e + ".") for e in entries)


def test_loss_weights_rerun_training_only() -> None:
    """The UV files store each pixel's weight class, not its weight: a change of
    ``train.loss_weights`` re-runs the ``train`` stage and leaves every ``uvgen_*`` stage (and the
    baselines, which do not use them) as it is."""
    dvc, params = load_dvc()
    stages = dvc["stages"]
    assert set(params["train"]["loss_weights"]) == {
        "keypoint",
        "eye_nose_mouth",
        "face",
        "outside",
    }
    for name in params["train"]["loss_weights"]:
        key = f"train.loss_weights.{name}"
        assert _tracks(stages["train"], key)
        tracking = sorted(s for s in stages if _tracks(stages[s], key))
        assert not [s for s in tracking if s.startswith(("uvgen", "train_"))], tracking
    uvgen = [s for s in stages if s.startswith("uvgen@")]
    assert uvgen
    for name in uvgen:
        _, files = stage_code(stages[name], params)
        assert ROOT / "model" / "loss.py" not in files  # nor the code that applies them


def test_stages_expand_as_dvc_expands_them() -> None:
    """The ``foreach`` expansion above gives DVC's own stage names, commands and deps."""
    from dvc.repo import Repo

    dvc, params = load_dvc()
    with Repo(str(ROOT)) as repo:
        resolved = {
            stage.name: stage
            for stage in repo.index.stages
            if Path(stage.dvcfile.path) == ROOT / "dvc.yaml"  # not real/dvc.yaml's
        }
    assert set(resolved) == set(dvc["stages"])
    for name, stage in dvc["stages"].items():
        assert resolved[name].cmd == interpolate(stage["cmd"], params), name
        ours = [interpolate(d, params) for d in _entries(stage.get("deps"))]
        theirs = [d.def_path for d in resolved[name].deps if not hasattr(d, "params")]
        assert theirs == ours, name


def test_every_method_is_trained_and_predicted_from_tracked_files() -> None:
    """Each ``predict.methods`` checkpoint is a dep of ``predict``; each key of ``baselines`` has
    its training stage, whose output is the checkpoint a predict method reads."""
    dvc, params = load_dvc()
    stages = dvc["stages"]
    predict_deps = {interpolate(d, params) for d in _entries(stages["predict"]["deps"])}
    for i, method in enumerate(params["predict"]["methods"]):
        assert method["checkpoint"] in predict_deps, f"predict.methods[{i}].checkpoint"
    checkpoints = {m["checkpoint"] for m in params["predict"]["methods"]}
    for kind in params["baselines"]:
        outs = [interpolate(o, params) for o in _entries(stages[f"train_baseline@{kind}"]["outs"])]
        assert outs == [f"{params['baselines'][kind]['out_dir']}/model.pt"]
        assert outs[0] in checkpoints, f"baselines.{kind}: no predict.methods entry reads it"
