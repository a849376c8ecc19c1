"""Stage `evaluate`: predictions + the test file's ground truth -> tables, metrics, CED data,
figures.

Reads the ``evaluate`` section of params.yaml and runs
:func:`eval.evaluate_all.evaluate_predictions`: the methods listed in the predict stage's
``manifest.json`` (in that order), then any ``external`` methods (eval/external.py: other
methods' predictions from files). Per-image metrics
(eval/evaluate.py), then the report files of eval/report.py in ``out_dir``: nme_table.md / .csv
(published numbers beside, marked), metrics.json (flat keys, ``dvc metrics show``), per_image.csv,
unmatched.csv, ced_<metric>.csv (wide, one column per method: ``dvc plots show``) and
figures/ced_<metric>.png / .pdf.
"""

from __future__ import annotations

import argparse

from eval.evaluate_all import evaluate_predictions
from eval.report import ReportFiles
from pipeline.config import DEFAULT_PARAMS, EvaluateParams, load_params
from uvgen.resumable import exclusive_lock


def run(p: EvaluateParams) -> ReportFiles:
    """The stage; returns the report's file paths. One run per ``out_dir`` at a time."""
    with exclusive_lock(p.out_dir, "evaluation"):
        return evaluate_predictions(
            p.test_file,
            p.predictions_dir,
            p.out_dir,
            p.external,
            max_error=p.max_error,
            ced_points=p.ced_points,
            chunk=p.chunk,
            recon_scale=p.recon_scale,
            on_unmatched=p.on_unmatched,
            data_dir=p.data_dir,
            model_dir=p.model_dir,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    out = run(load_params(args.params).evaluate)
    text = out.markdown.read_text(encoding="utf-8")
    first = text.split("## ")[1] if "## " in text else text
    print("## " + first.rstrip())
    print(
        f"evaluate: report -> {out.markdown.parent} ({out.markdown.name}, {out.metrics_json.name}, "
        f"{len(out.ced_csv)} CED tables, {len(out.figures)} figures)"
    )


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
