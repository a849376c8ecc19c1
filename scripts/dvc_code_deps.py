"""Print each dvc.yaml stage's code deps as tests/test_dvc_yaml.py derives them (the modules its
``python -m pipeline.X`` imports, transitively), a folder where the stage runs every file of it.

    python scripts/dvc_code_deps.py            # one flow-style ``deps:`` list per stage

Paste a stage's list into dvc.yaml after a change of imports makes that test fail (data deps go
first, as ``"${...}"``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_dvc_yaml import is_trivial, load_dvc, stage_code  # noqa: E402


def code_deps(files: set[Path]) -> list[str]:
    """Project files -> deps: a folder (below a package) whose every non-trivial .py file is in
    ``files`` replaces them; the rest as files. Sorted."""
    files = {f for f in files if not is_trivial(f)}
    deps: list[str] = []
    covered: set[Path] = set()
    folders = sorted(
        {p for f in files for p in f.parents if ROOT in p.parents and p.parent != ROOT}
    )
    for folder in folders:
        if any(c in folder.parents or c == folder for c in covered):
            continue
        inside = {f for f in folder.rglob("*.py") if not is_trivial(f)}
        if inside and inside <= files:
            covered.add(folder)
            deps.append(folder.relative_to(ROOT).as_posix())
    deps += [
        f.relative_to(ROOT).as_posix() for f in files if not any(c in f.parents for c in covered)
    ]
    return sorted(deps)


def flow_list(entries: list[str], key_column: int = 4, width: int = 100) -> str:
    """``[a, b, ...]`` for ``deps:`` at ``key_column``, wrapped at ``width`` columns, continuation
    lines indented two more than the key."""
    indent = key_column + 2
    lines, line = [], "["
    for i, entry in enumerate(entries):
        text = (f'"{entry}"' if "${" in entry else entry) + ("]" if i == len(entries) - 1 else ",")
        start = key_column + len("deps: ") if not lines else indent
        if start + len(line) + len(text) + 1 > width and line != "[":
            lines.append(line)
            line = ""
        line = f"{line} {text}" if line not in ("", "[") else line + text
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def main() -> None:
    dvc, params = load_dvc()
    for name, stage in dvc["stages"].items():
        _, files = stage_code(stage, params)
        print(f"{name}:\n    deps: {flow_list(code_deps(files))}")


if __name__ == "__main__":
    main()
