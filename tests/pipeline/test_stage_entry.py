"""Every stage script ends in ``run_stage(main)`` and nothing in the script rebinds that name.

A stage script that defines its own module-level ``run`` (predict, evaluate and figures do: the
library call the stage makes) once had its ``__main__`` block import ``pipeline.stage.run`` under
the same name inside the block, where the module's own ``run`` was called with the parsed
parameters instead of the wrapper: the stage failed only when started as ``python -m``. This
checks the entry of every script statically, so it cannot regress unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
STAGES = sorted(
    p
    for p in PIPELINE.glob("*.py")
    if "__main__" in p.read_text() and p.stem not in ("cli", "stage")
)


def _main_block(tree: ast.Module) -> ast.If:
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return node
    raise AssertionError("no __main__ block")


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.stem)
def test_stage_entry_calls_the_wrapper(path: Path) -> None:
    tree = ast.parse(path.read_text())
    block = _main_block(tree)
    calls = [n for n in ast.walk(block) if isinstance(n, ast.Call)]
    assert any(ast.unparse(c.func) == "run_stage" for c in calls), ast.unparse(block)
    imports = [n for n in ast.walk(block) if isinstance(n, ast.ImportFrom)]
    assert any(
        n.module == "pipeline.stage"
        and any(a.name == "run" and a.asname == "run_stage" for a in n.names)
        for n in imports
    )
    top_level = {
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.FunctionDef, ast.ImportFrom, ast.Import))
        for t in (
            node.targets
            if isinstance(node, ast.Assign)
            else [ast.Name(id=node.name)]
            if isinstance(node, ast.FunctionDef)
            else [ast.Name(id=a.asname or a.name) for a in node.names]
        )
        if isinstance(t, ast.Name)
    }
    assert "run_stage" not in top_level, f"{path.name} rebinds run_stage at module level"


def test_every_stage_script_is_checked() -> None:
    names = {p.stem for p in STAGES}
    assert {"predict", "evaluate", "figures", "train", "make_uv", "make_synth"} <= names
