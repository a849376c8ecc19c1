"""The evaluate stage as one call: the predict stage's files (+ external methods) against the test
file's ground truth -> the report files of :mod:`eval.report`.

Methods: those of the predict stage's ``manifest.json`` (in that order), then the ``external``
methods (:mod:`eval.external`: other methods' predictions from files). Per-image metrics by
:func:`eval.evaluate.evaluate`; notes in the report say which methods were skipped and which images
went unmatched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eval.aflw_truth import read_aflw_truth
from eval.evaluate import GroundTruthFile, evaluate
from eval.external import ExternalSpec, load_external
from eval.methods import read_manifest
from eval.predictions import PredictionsFile
from eval.report import ReportFiles, write_report
from uvgen.formats.errors import DataError


def evaluate_predictions(
    test_file: Path,
    predictions_dir: Path,
    out_dir: Path,
    external: Sequence = (),
    max_error: float = 0.10,
    ced_points: int = 101,
    chunk: int = 64,
    recon_scale: bool = False,
    on_unmatched: str = "report",
    data_dir: Path | None = None,
    model_dir: Path | None = None,
) -> ReportFiles:
    """Evaluate every method and write the report into ``out_dir``; returns its file paths.

    ``external``: mappings as in params.yaml ``evaluate.external``
    (:class:`eval.external.ExternalSpec`); ``data_dir``: the AFLW2000-3D folder the test file
    was built from: the 68-point ground truth and the yaw of EVERY image come from its ``.mat``
    files (:mod:`eval.aflw_truth`), the dense ground truth from the test file by name, so an image
    the build rejected is a named failure, never dropped; the other arguments as in
    :func:`eval.evaluate.evaluate` and :func:`eval.report.write_report`. ``model_dir`` (with
    ``data_dir``): the morphable model whose mean key vertices give each method's head pose."""
    manifest = read_manifest(predictions_dir)
    notes = [
        f"{s['name']}: not evaluated ({s.get('reason', 'skipped')})"
        for s in manifest.get("skipped", [])
    ]
    files = []
    try:
        for entry in manifest["methods"]:
            files.append(PredictionsFile(Path(predictions_dir) / entry["file"]))
        with GroundTruthFile(test_file) as split:
            gt = (
                split
                if data_dir is None
                else read_aflw_truth(data_dir, model_dir=model_dir, test_file=split)
            )
            notes += truth_notes(gt)
            externals = []
            for i, raw in enumerate(external):
                if not isinstance(raw, dict):
                    raise DataError(
                        test_file, f"evaluate.external[{i}]", "each entry must be a mapping"
                    )
                spec = ExternalSpec.from_dict(raw)
                externals.append(
                    load_external(spec, split.dense_count, split.face_ind, split.uv_size)
                )
            results = evaluate(
                gt,
                [*files, *externals],
                chunk=chunk,
                recon_scale=recon_scale,
                on_unmatched=on_unmatched,
            )
    finally:
        for f in files:
            f.close()
    for r in results:
        if r.matching.missing or r.matching.extra:
            notes.append(
                f"{r.method}: {len(r.matching.missing)} test image(s) without a prediction, "
                f"{len(r.matching.extra)} prediction(s) for images not in the test set "
                "(unmatched.csv)"
            )
    # every configured method keeps its CED column (empty when left out): dvc.yaml's plots name them
    columns = [m["name"] for m in manifest["methods"]] + [
        s["name"] for s in manifest.get("skipped", [])
    ]
    return write_report(
        results,
        out_dir,
        test_file=str(test_file),
        max_error=max_error,
        n_points=ced_points,
        notes=notes,
        ced_columns=columns,
        pose_deg=gt.pose_deg,
    )


def truth_notes(gt) -> list[str]:
    """Report lines naming the files that could not be scored and the dense failures."""
    notes = [f"`{name}`: not scored, {why}" for name, why in getattr(gt, "unreadable", ())]
    notes += [
        f"`{name}`: no dense ground truth ({why}); a failure in every dense table"
        for name, why in gt.dense_failures.items()
    ]
    return notes
