"""Write a copy of params.yaml with some keys overridden (for benchmark and device runs).

    python benchmarks/write_params.py OUT.yaml train.width=16 train_common.device=cuda \\
        synth_300wlp.count=5000

Each ``section.key=value`` value is parsed as YAML (``true``, ``16``, ``1.0e-4``, ``null``,
``[1, 2]``).
The key must already exist in the base file (``--base``, default: the project's params.yaml), so a
typo fails here, naming the key, instead of silently adding an unused setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

BASE = Path(__file__).resolve().parents[1] / "params.yaml"


def override(params: dict, assignment: str) -> None:
    """Apply one ``a.b.c=value`` assignment to the nested dict ``params`` in place."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise SystemExit(f"write_params: {assignment!r} is not KEY=VALUE")
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise SystemExit(f"write_params: {key}: no section {part!r} in the base params")
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"write_params: {key}: no such key in the base params")
    node[leaf] = yaml.safe_load(raw)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--base", type=Path, default=BASE)
    args = parser.parse_intermixed_args()  # --base may come after OUT
    params = yaml.safe_load(args.base.read_text())
    for assignment in args.assignments:
        override(params, assignment)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(params, sort_keys=False))


if __name__ == "__main__":
    main()
