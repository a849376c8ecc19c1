"""Tests for the evaluate stage (pipeline/evaluate.py) after the predict stage on a tiny test file:
parameters in, the report out (predict alone: tests/pipeline/test_predict.py)."""

from __future__ import annotations

from tests.tiny_data import write_uv_test_file


def test_predict_and_evaluate_stages_end_to_end(tmp_path):
    from model.checkpoint import save_weights
    from model.prnet import PRNet
    from pipeline.config import EvaluateParams, PredictParams
    from pipeline.evaluate import run as run_evaluate
    from pipeline.predict import run as run_predict

    path, _, _ = write_uv_test_file(tmp_path, n=3)
    save_weights(tmp_path / "prn.pt", PRNet(width=2, in_size=32))
    methods = [
        {"name": "PRN", "kind": "prn", "checkpoint": str(tmp_path / "prn.pt")},
        {"name": "3DDFA", "kind": "3ddfa", "checkpoint": str(tmp_path / "absent.pt")},
    ]
    params = dict(
        test_file=path, out_dir=tmp_path / "pred", batch_size=2, device="cpu", methods=methods
    )
    run_predict(PredictParams(**params, skip_missing=True))
    files = run_evaluate(
        EvaluateParams(
            test_file=path,
            predictions_dir=tmp_path / "pred",
            out_dir=tmp_path / "eval",
            external=[],
            max_error=0.1,
            ced_points=11,
            chunk=2,
            recon_scale=False,
            on_unmatched="report",
        )
    )
    md = files.markdown.read_text()
    assert "| **PRN** | measured |" in md and "3DDFA: not evaluated" in md
    assert files.metrics_json.is_file() and len(files.figures) == 6
    ced = files.ced_csv["nme_2d_68"].read_text().splitlines()
    # the skipped method's column stays, empty
    assert ced[0] == "nme,PRN,3DDFA" and ced[1].endswith(",")
