"""Stage ``benchmark`` of the real-data pipeline (real/dvc.yaml): the paper's AFLW2000-3D tables and
CED figures from the real files named in real/params.yaml.

    cd real && dvc repro          # or: python -m pipeline.real_benchmark --params real/params.yaml

The same code as ``prnet evaluate`` (eval.aflw_benchmark.run_benchmark); relative paths in the
params file are taken from the params file's folder.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

from eval.aflw_benchmark import run_benchmark
from eval.report import ReportFiles
from pipeline.config import BenchmarkParams, load_benchmark_params
from uvgen.resumable import exclusive_lock


def _anchored(p: BenchmarkParams, base: Path) -> BenchmarkParams:
    """Every path (fields, and the files of each method's source) taken from ``base`` (the params
    file's folder) unless absolute."""

    def at(path: str | Path) -> Path:
        return Path(path) if Path(path).is_absolute() else base / path

    def source(text: str) -> str:
        if "=" not in text:
            return str(at(text))
        pairs = (part.partition("=") for part in text.split(","))
        return ",".join(f"{k}={v if k == 'runtime_ms' else at(v)}" for k, _, v in pairs)

    changes = {f.name: at(v) for f in fields(p) if isinstance(v := getattr(p, f.name), Path)}
    methods = [replace(m, source=source(m.source)) for m in p.methods]
    return replace(p, **changes, methods=methods)


def run(p: BenchmarkParams) -> ReportFiles:
    """The stage; one run per ``out_dir`` at a time."""
    with exclusive_lock(p.out_dir, "benchmark"):
        return run_benchmark(
            p.data_dir,
            [(m.name, m.source) for m in p.methods],
            p.out_dir,
            model_dir=p.model_dir,
            uv_data=p.uv_data,
            reannotated=p.reannotated,
            reannotated_names=p.reannotated_names,
            test_file=p.test_file,
            device=p.device,
            recon_scale=p.recon_scale,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml", help="the real-data params file")
    args = parser.parse_args(argv)
    params = _anchored(load_benchmark_params(args.params), Path(args.params).resolve().parent)
    out = run(params)
    text = out.markdown.read_text(encoding="utf-8")
    print("## " + (text.split("## ")[1] if "## " in text else text).rstrip())
    print(f"benchmark: report -> {out.markdown.parent}")


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
