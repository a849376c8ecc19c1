"""The AFLW2000-3D benchmark in one call: an AFLW2000-3D folder + any methods -> every table.

    run_benchmark("AFLW2000", [("PRN", "prnet.pt"), ("2DASL", "params=p.npy,basis=b.npz,...")],
                  "out", uv_data="PRNet/Data/uv-data", model_dir="BFM", reannotated=".../pts68.npy")

Ground truth straight from the ``.mat`` files (:mod:`eval.aflw_truth`): every image counts in the
68-point tables, which need no morphable model. With ``model_dir`` (a face3d-layout BFM) the dense
and reconstruction tables are added, at the face pixels of ``uv_data``'s ``face_ind`` (PRNet's,
so that its released model and the BFM share one region) or of the model's own face mask, and the
head pose of methods that give 3D landmarks only. Methods come from ``NAME=SOURCE``
(:mod:`eval.sources`). The report (:func:`eval.report.write_report`) names every unreadable file,
every image without a dense ground truth and every image a method has no prediction for; those
count as failures in the CED and the AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from eval.aflw_truth import read_aflw_truth
from eval.evaluate import GroundTruthFile, evaluate
from eval.evaluate_all import truth_notes
from eval.report import ReportFiles, write_report
from eval.sources import load_method
from eval.tables import METRICS


def _face_ind(uv_data: Path | None) -> np.ndarray | None:
    if uv_data is None:
        return None
    from model.release import load_uv_data

    return load_uv_data(uv_data).face_ind


def run_benchmark(
    data_dir: str | Path,
    methods: Sequence[tuple[str, str]],
    out_dir: str | Path,
    model_dir: str | Path | None = None,
    uv_data: str | Path | None = None,
    reannotated: str | Path | None = None,
    reannotated_names: str | Path | None = None,
    test_file: str | Path | None = None,
    device: str = "auto",
    max_error: float = 0.10,
    ced_points: int = 101,
    chunk: int = 64,
    recon_scale: bool = False,
    figures: bool = True,
) -> ReportFiles:
    """Score ``methods`` (name, source) on the AFLW2000-3D folder ``data_dir``; write the report
    into ``out_dir`` and return its files (module docstring). ``test_file``: a test split built by
    ``uvgen@test`` from ``data_dir``, whose maps give the dense ground truth."""
    if not methods:
        raise ValueError("give at least one method (--method NAME=SOURCE)")
    with ExitStack() as stack:
        split = None if test_file is None else stack.enter_context(GroundTruthFile(Path(test_file)))
        uv_data = None if uv_data is None else Path(uv_data)
        model_dir = None if model_dir is None else Path(model_dir)
        truth = read_aflw_truth(
            data_dir,
            model_dir=model_dir,
            face_ind=_face_ind(uv_data) if model_dir is not None and split is None else None,
            reannotated=reannotated,
            reannotated_names=reannotated_names,
            test_file=split,
        )
        preds = [load_method(n, s, truth, uv_data, model_dir, device) for n, s in methods]
        for p in preds:  # predictions files (.h5) stay open for the chunked reads, then close
            if hasattr(p, "close"):
                stack.callback(p.close)
        results = evaluate(truth, preds, chunk=chunk, recon_scale=recon_scale)
        notes = truth_notes(truth)
        if model_dir is None and split is None:
            notes.append(
                "Dense and reconstruction tables need a face3d-layout morphable model "
                "(--model-dir) or a test split (--test-file): left out."
            )
        if model_dir is None:
            notes.append(
                "Head pose from 68 landmarks needs the model's mean shape (--model-dir): only "
                "methods that give their own pose (weights, prnet predict folders, parameters) "
                "are scored."
            )
        if reannotated is None:
            notes.append("Re-annotated table: give 3DDFA's pts68 file with --reannotated.")
        return write_report(
            results,
            out_dir,
            test_file=str(data_dir),
            max_error=max_error,
            n_points=ced_points,
            figures=figures,
            notes=notes,
            pose_deg=truth.pose_deg,
            ced_metrics=_ced_metrics(results),
        )


def _ced_metrics(results) -> tuple[str, ...]:
    """The NME metrics some method has, in the tables' order (a CED each)."""
    have = {m for r in results for m in r.metrics}
    return tuple(m for m in METRICS if m in have)
