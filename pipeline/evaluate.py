"""Stage `evaluate`: predictions + the test file's ground truth -> tables, metrics, CED data, figures.

Reads the ``evaluate`` section of params.yaml: the methods listed in the predict stage's
``manifest.json`` (in that order), then any ``external`` methods (eval/external.py: other methods'
predictions from files). Per-image metrics (eval/evaluate.py), then the report files of
eval/report.py in ``out_dir``: nme_table.md / .csv (published numbers beside, marked), metrics.json
(flat keys, ``dvc metrics show``), per_image.csv, unmatched.csv, ced_<metric>.csv (wide, one column
per method: ``dvc plots show``) and figures/ced_<metric>.png / .pdf.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from eval.evaluate import GroundTruthFile, evaluate
from eval.external import ExternalSpec, load_external
from eval.predictions import PredictionsFile
from eval.report import write_report
from pipeline.config import DEFAULT_PARAMS, EvaluateParams, load_params
from pipeline.predict import read_manifest
from uvgen.formats.errors import DataError


def run(p: EvaluateParams):
    """The stage; returns the report's file paths (eval.report.ReportFiles)."""
    manifest = read_manifest(p.predictions_dir)
    notes = [f"{s['name']}: not evaluated ({s.get('reason', 'skipped')})" for s in manifest.get("skipped", [])]
    files = []
    try:
        for entry in manifest["methods"]:
            files.append(PredictionsFile(Path(p.predictions_dir) / entry["file"]))
        with GroundTruthFile(p.test_file) as gt:
            externals = []
            for i, raw in enumerate(p.external):
                if not isinstance(raw, dict):
                    raise DataError(p.test_file, f"evaluate.external[{i}]", "each entry must be a mapping")
                spec = ExternalSpec.from_dict(raw)
                externals.append(load_external(spec, gt.dense_count, gt.face_ind))
            results = evaluate(gt, [*files, *externals], chunk=p.chunk, recon_scale=p.recon_scale,
                               on_unmatched=p.on_unmatched)
    finally:
        for f in files:
            f.close()
    for r in results:
        if r.matching.missing or r.matching.extra:
            notes.append(f"{r.method}: {len(r.matching.missing)} test image(s) without a prediction, "
                         f"{len(r.matching.extra)} prediction(s) for images not in the test set (unmatched.csv)")
    # every configured method keeps its CED column (empty when left out): dvc.yaml's plots name them
    columns = [m["name"] for m in manifest["methods"]] + [s["name"] for s in manifest.get("skipped", [])]
    return write_report(results, p.out_dir, test_file=str(p.test_file), max_error=p.max_error,
                        n_points=p.ced_points, notes=notes, ced_columns=columns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    out = run(load_params(args.params).evaluate)
    text = out.markdown.read_text(encoding="utf-8")
    first = text.split("## ")[1] if "## " in text else text
    print("## " + first.rstrip())
    print(f"evaluate: report -> {out.markdown.parent} ({out.markdown.name}, {out.metrics_json.name}, "
          f"{len(out.ced_csv)} CED tables, {len(out.figures)} figures)")


if __name__ == "__main__":
    from pipeline.stage import run

    run(main)  # one-line errors, --debug for the traceback, dies with its parent
