"""``prnet export-onnx``: ONNX Runtime's output equals the PyTorch predictor's within 1e-3 px, at
any batch size, and bad arguments are one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.checkpoint import save_weights
from model.inference import Predictor
from model.prnet import PRNet
from pipeline import cli

ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is not installed")


def test_onnx_runtime_equals_pytorch_within_a_thousandth_of_a_pixel(tmp_path, capsys):
    torch.manual_seed(0)
    net = PRNet(width=4)
    # trained-looking batch-norm statistics, so that folding them is exercised
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    save_weights(tmp_path / "w.pt", net)
    assert cli.main(["export-onnx", str(tmp_path / "w.pt"), str(tmp_path / "p.onnx")]) == 0
    assert "p.onnx" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    crops = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    ours = Predictor(net, np.zeros((2, 68), int), np.zeros(1, int), device="cpu").predict_maps(
        crops
    )
    for batch in (crops[:1], crops):  # the batch axis is dynamic
        theirs = session.run(None, {"crops": batch.astype(np.float32)})[0]
        assert theirs.shape == batch.shape
        np.testing.assert_allclose(theirs, ours[: len(batch)], rtol=0, atol=1e-3)


def test_bad_arguments_are_one_line(tmp_path, capsys):
    assert cli.main(["export-onnx", str(tmp_path / "none.pt"), str(tmp_path / "p.onnx")]) == 1
    assert "none.pt: missing weights file" in capsys.readouterr().err
    save_weights(tmp_path / "w.pt", PRNet(width=2))
    (tmp_path / "dir.onnx").mkdir()
    assert cli.main(["export-onnx", str(tmp_path / "w.pt"), str(tmp_path / "dir.onnx")]) == 1
    assert "is a folder" in capsys.readouterr().err
