"""Training loop: sample order, reproducibility, kill-and-resume, metrics files, DDP on CPU
(gloo)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml

from model.checkpoint import load_checkpoint, load_weights, rng_state, set_rng_state
from model.data import EpochBatchSampler, epoch_permutation, split_indices, write_toy_file
from model.train import TrainConfig, run_fingerprint, state_digest, train
from model.train_settings import TrainCommon, lr_factor
from pipeline.config import DEFAULT_PARAMS, PROJECT_ROOT
from pipeline.train import config_from_params
from uvgen.resumable import BuildLockedError, exclusive_lock

TINY = dict(
    epochs=2,
    batch_size=4,
    width=4,
    bn_momentum=0.1,
    lr=1e-3,
    lr_step_epochs=1,
    checkpoint_every=4,
    num_workers=0,
    progress=False,
    val_fraction=0.1,
    seed=3,
    device="cpu",
    lr_schedule="onecycle",
    warmup_frac=0.2,
    net_size=32,
)


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    """40 samples of 64x64: 36 train (9 steps of 4 per epoch) + 4 validation."""
    return write_toy_file(tmp_path_factory.mktemp("toy") / "train.h5", n=40, size=64, seed=1)


def _config(toy_file: Path, out_dir: Path, **over) -> TrainConfig:
    return TrainConfig(train_file=toy_file, out_dir=out_dir, **{**TINY, **over})


def _onecycle_factor(step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning-rate factor at ``step`` of TINY's schedule: one-cycle, 20 % warm-up."""
    return lr_factor(
        step,
        schedule="onecycle",
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        lr_step_epochs=1,
        lr_gamma=0.5,
        warmup_frac=0.2,
    )


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    a = EpochBatchSampler(50, 4, seed=7)
    assert a.steps_per_epoch == 12
    a.set_epoch(3)
    full = list(a)
    assert len(full) == 12 and all(len(b) == 4 for b in full)
    assert len({i for b in full for i in b}) == 48  # no repeats, last partial batch dropped
    a.set_epoch(3, start_step=5)
    assert list(a) == full[5:] and len(a) == 7
    b = EpochBatchSampler(50, 4, seed=7)
    b.set_epoch(3)
    assert list(b) == full
    b.set_epoch(4)
    assert list(b) != full
    assert not torch.equal(epoch_permutation(50, 8, 3), epoch_permutation(50, 7, 3))
    # two ranks split the one-process batches between them, without overlap
    r0, r1 = EpochBatchSampler(50, 2, 7, 0, 2), EpochBatchSampler(50, 2, 7, 1, 2)
    single = EpochBatchSampler(50, 2, 7).epoch_batches(3)
    assert r0.epoch_batches(3) == single[0::2][:12] and r1.epoch_batches(3) == single[1::2][:12]


def test_split_indices_disjoint_and_seeded() -> None:
    tr, va = split_indices(40, 0.1, seed=3)
    assert len(va) == 4 and len(tr) == 36 and not set(tr) & set(va)
    assert set(tr) | set(va) == set(range(40))
    tr2, va2 = split_indices(40, 0.1, seed=3)
    assert (va == va2).all() and (tr == tr2).all()
    assert len(split_indices(40, 0.0, 0)[1]) == 0


def test_rng_state_round_trip() -> None:
    import random

    import numpy as np

    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_same_seed_same_weights_and_metrics_files(toy_file: Path, tmp_path: Path) -> None:
    r1 = train(_config(toy_file, tmp_path / "a", resume=False))
    r2 = train(
        _config(toy_file, tmp_path / "b", resume=False, num_workers=2)
    )  # workers change nothing
    r3 = train(_config(toy_file, tmp_path / "c", resume=False, seed=4))
    assert state_digest(r1.model) == state_digest(r2.model)
    assert state_digest(r1.model) != state_digest(r3.model)
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    out = tmp_path / "a"
    assert state_digest(load_weights(out / "model.pt")) == state_digest(r1.model)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["step"] == 18
    assert {"train_loss", "val_loss", "val_nme_pct"} <= set(metrics)
    with open(out / "loss.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the rate at each epoch's first step: one-cycle over 2 x 9 steps, 20 % warm-up
    expect = [1e-3 * _onecycle_factor(k, steps_per_epoch=9, epochs=2) for k in (0, 9)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expect)
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["progress"]["epoch"] == 2 and ckpt["progress"]["step_in_epoch"] == 0
    assert ckpt["fingerprint"] == run_fingerprint(_config(toy_file, out))
    # a finished run started again does no more steps and leaves the weights as they are
    again = train(_config(toy_file, out))
    assert state_digest(again.model) == state_digest(r1.model) and again.resumed_from.epoch == 2
    # fewer epochs than the checkpoint has done, changed settings, a damaged file: start afresh
    shorter = train(_config(toy_file, out, epochs=1))
    assert shorter.resumed_from is None and len(shorter.history) == 1
    other = train(_config(toy_file, out, lr=2e-3, epochs=1))
    assert other.resumed_from is None and len(other.history) == 1
    (out / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    damaged = train(_config(toy_file, out, epochs=1))
    assert damaged.resumed_from is None and len(damaged.history) == 1


_CHILD = r"""
import sys, time
from pathlib import Path
import torch
import model.checkpoint as C
import model.train as T
from pipeline.train import main
from uvgen.resumable import unique_tmp_name

marker, where, stop_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
calls = [0]
loss_fn, write_fn = T.weighted_map_loss, C.atomic_write_bytes


def wait_for_kill():
    marker.write_text("ready")
    time.sleep(600)


def loss(*args, **kwargs):
    if where == "step" and torch.is_grad_enabled():  # a training step (validation has no grad)
        calls[0] += 1
        if calls[0] == stop_at:  # steps 1 .. stop_at-1 are done
            wait_for_kill()
    return loss_fn(*args, **kwargs)


def write(path, data, *args, **kwargs):
    if where == "save" and Path(path).name == "last.pt":
        calls[0] += 1
        if calls[0] == stop_at:  # half of this checkpoint is on disk
            unique_tmp_name(Path(path)).write_bytes(bytes(data)[: len(data) // 2])
            wait_for_kill()
    return write_fn(path, data, *args, **kwargs)


T.weighted_map_loss, C.atomic_write_bytes = loss, write
main(["--params", sys.argv[4]])
"""


def _params_file(path: Path, cfg: TrainConfig) -> Path:
    raw = yaml.safe_load(Path(DEFAULT_PARAMS).read_text())
    raw["train"] = cfg.to_json()
    raw["train_common"] = {key: raw["train"].pop(key) for key in TrainCommon.common_keys()}
    path.write_text(yaml.safe_dump(raw))
    return path


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}
STAGE_OUTS = ("model.pt", "loss.csv", "metrics.json")  # dvc.yaml's train outs, metrics, plots


def _run_stage(params: Path, cwd: Path = PROJECT_ROOT) -> None:
    subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--params", str(params)],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
        env=ENV,
    )


def _kill_at(params: Path, where: str, stop_at: int) -> None:
    """Run the stage (in the params file's folder) and SIGKILL it at training step ``stop_at``
    (``where='step'``) or half-way through its ``stop_at``-th checkpoint write (``'save'``)."""
    marker = params.parent / "ready"
    marker.unlink(missing_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(marker), where, str(stop_at), str(params)],
        cwd=params.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, (
                f"the training child never reached {where} {stop_at}"
            )
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def straight_run(toy_file: Path, tmp_path_factory) -> Path:
    """An uninterrupted stage run: 2 epochs x 9 steps; checkpoints at global steps 4, 8, 9 (epoch
    end), 12, 16, 18."""
    root = tmp_path_factory.mktemp("straight")
    _run_stage(_params_file(root / "params.yaml", _config(toy_file, Path("out"))), root)
    return root / "out"


def test_killed_mid_epoch_resumes_to_identical_weights(
    toy_file: Path, tmp_path: Path, straight_run: Path
) -> None:
    params = _params_file(tmp_path / "params.yaml", _config(toy_file, Path("out")))
    _kill_at(params, "step", 14)  # 13 steps done, the last checkpoint is from step 12
    ckpt = load_checkpoint(tmp_path / "out" / "checkpoints" / "last.pt")
    assert (ckpt["progress"]["epoch"], ckpt["progress"]["step_in_epoch"]) == (1, 3)  # mid-epoch 2
    assert ckpt["progress"]["global_step"] == 12
    assert not (tmp_path / "out" / "model.pt").exists()

    _run_stage(params, tmp_path)  # the same command again: resumes from step 12
    a = load_weights(straight_run / "model.pt")
    b = load_weights(tmp_path / "out" / "model.pt")
    assert state_digest(a) == state_digest(b)


@pytest.mark.parametrize(
    "kills",
    [
        [("step", 7), ("step", 9)],  # mid-epoch 1 (from step 4), then mid-epoch 2 (from step 12)
        [("save", 3), ("save", 2)],  # during the epoch-1-end write, then during step 12's
    ],
)
def test_killed_at_several_moments_writes_what_an_uninterrupted_run_writes(
    toy_file: Path, tmp_path: Path, straight_run: Path, kills: list[tuple[str, int]]
) -> None:
    """Every file of the stage's outputs byte for byte, the lr column included (it was read at the
    resumed step, not the epoch's first)."""
    params = _params_file(tmp_path / "params.yaml", _config(toy_file, Path("out")))
    for where, stop_at in kills:
        _kill_at(params, where, stop_at)
    _run_stage(params, tmp_path)
    for name in STAGE_OUTS:
        assert (tmp_path / "out" / name).read_bytes() == (straight_run / name).read_bytes(), name


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, results: Path) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    result = train(cfg)
    (results / f"rank{rank}.txt").write_text(state_digest(result.model))


def test_ddp_two_ranks_on_cpu_gloo(toy_file: Path, tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(toy_file, tmp_path / "ddp", epochs=1, checkpoint_every=2)
    mp.start_processes(
        _ddp_worker, args=(2, port, cfg, tmp_path), nprocs=2, join=True, start_method="fork"
    )
    d0, d1 = (tmp_path / "rank0.txt").read_text(), (tmp_path / "rank1.txt").read_text()
    assert d0 == d1  # DDP keeps the replicas identical
    assert state_digest(load_weights(cfg.out_dir / "model.pt")) == d0  # written by rank 0
    ckpt = load_checkpoint(cfg.out_dir / "checkpoints" / "last.pt")
    # 36 samples / global batch 4 = 9 global steps, each rank taking 2 samples per step
    assert ckpt["progress"]["global_step"] == 9
    assert json.loads((cfg.out_dir / "metrics.json").read_text())["step"] == 9


def test_params_section_gives_every_config_field() -> None:
    raw = yaml.safe_load(Path(DEFAULT_PARAMS).read_text())
    assert sorted([*raw["train"], *raw["train_common"]]) == sorted(
        f.name for f in fields(TrainConfig)
    )
    cfg = config_from_params(DEFAULT_PARAMS)
    assert cfg.batch_size == 16 and cfg.lr_schedule in ("step", "onecycle")
    # the dataclass defaults stay the paper's recipe (the GPU experiment)
    paper = TrainConfig(train_file=cfg.train_file)
    assert (
        paper.lr == pytest.approx(1e-4) and paper.lr_schedule == "step" and paper.net_size is None
    )
    assert paper.lr_step_epochs == 5 and paper.lr_gamma == pytest.approx(0.5) and paper.width == 16


def test_paper_loss_weights_give_the_old_loss_bit_for_bit(toy_file: Path) -> None:
    """Training used to multiply by the file's float32 ``uv/weight_mask``; it now maps the file's
    classes through ``loss_weights``: at the paper's weights the loss of a batch is the same bits,
    and other weights change it (doubling every weight doubles it exactly)."""
    import h5py
    import numpy as np

    from model.data import prepare_batch
    from model.loss import LossWeights
    from model.prnet import PRNet
    from model.train import forward_loss
    from uvgen.h5store import PositionMapFile

    with h5py.File(toy_file, "r") as f:
        old_mask = torch.from_numpy(np.asarray(f["uv/weight_mask"][...], np.float32))
    with PositionMapFile(toy_file) as f:
        classes = f.uv.weight_class
        images = torch.from_numpy(np.stack([f.image(i) for i in range(4)]))
        maps = torch.from_numpy(np.stack([f.posmap(i) for i in range(4)]))
    x, y = prepare_batch(images, maps)
    torch.manual_seed(0)
    net = PRNet(width=4, in_size=64, net_size=32).eval()
    paper = LossWeights.paper()
    new_mask = torch.from_numpy(paper.weight_map(classes))
    assert torch.equal(new_mask, old_mask)
    with torch.no_grad():
        old = forward_loss(net, x, y, old_mask)
        new = forward_loss(net, x, y, new_mask)
        twice = LossWeights(**{k: 2 * v for k, v in paper.__dict__.items()})
        doubled = forward_loss(net, x, y, torch.from_numpy(twice.weight_map(classes)))
        kpt = LossWeights(keypoint=32.0, eye_nose_mouth=4.0, face=3.0, outside=0.0)
        other = forward_loss(net, x, y, torch.from_numpy(kpt.weight_map(classes)))
    assert new.item() == old.item() and float(doubled) == 2 * float(new)
    assert float(other) > float(new)


def test_a_file_with_weight_mask_alone_trains_as_one_with_classes(
    toy_file: Path, tmp_path: Path
) -> None:
    """A UV file written before ``uv/weight_class`` existed (``uv/weight_mask`` alone) trains to
    the same weights; ``loss_weights`` change the run, its fingerprint and model.pt's record."""
    import h5py

    from model.loss import LossWeights

    old_file = tmp_path / "old.h5"
    old_file.write_bytes(toy_file.read_bytes())
    with h5py.File(old_file, "a") as f:
        del f["uv/weight_class"]
    new = train(_config(toy_file, tmp_path / "new", epochs=1, resume=False))
    old = train(_config(old_file, tmp_path / "old", epochs=1, resume=False))
    assert state_digest(new.model) == state_digest(old.model)
    assert [h["train_loss"] for h in new.history] == [h["train_loss"] for h in old.history]
    weights = LossWeights(keypoint=32.0, eye_nose_mouth=4.0, face=3.0, outside=0.0)
    cfg = _config(toy_file, tmp_path / "kpt32", epochs=1, resume=False, loss_weights=weights)
    assert run_fingerprint(cfg) != run_fingerprint(_config(toy_file, tmp_path / "kpt32", epochs=1))
    other = train(cfg)
    assert state_digest(other.model) != state_digest(new.model)
    meta = torch.load(cfg.out_dir / "model.pt", weights_only=True)["meta"]
    assert meta["config"]["loss_weights"] == {
        "keypoint": 32.0,
        "eye_nose_mouth": 4.0,
        "face": 3.0,
        "outside": 0.0,
    }


def test_scheduler_follows_lr_factor_per_step(toy_file: Path, tmp_path: Path) -> None:
    cfg = _config(toy_file, tmp_path / "run", epochs=1, val_fraction=0.0)
    result = train(cfg)
    assert result.history[0]["lr"] == pytest.approx(
        cfg.lr * _onecycle_factor(0, steps_per_epoch=10, epochs=1)
    )
    ckpt = load_checkpoint(cfg.out_dir / "checkpoints" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 10  # stepped once per optimisation step (40 // 4)


def test_config_validation(toy_file: Path) -> None:
    with pytest.raises(ValueError):
        TrainConfig(train_file=toy_file, amp="fp16")
    with pytest.raises(ValueError):
        TrainConfig(train_file=toy_file, scale_range=(1.2, 0.9))
    with pytest.raises(ValueError):
        TrainConfig(train_file=toy_file, epochs=0)


def test_a_second_training_into_the_same_folder_stops_at_once(
    toy_file: Path, tmp_path: Path
) -> None:
    """Held lock (a first training): the stage ends at once in one line naming folder and pid."""
    cfg = _config(toy_file, tmp_path / "out")
    with exclusive_lock(cfg.out_dir, "training"):
        with pytest.raises(BuildLockedError):
            train(cfg)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.train",
                "--params",
                str(_params_file(tmp_path / "params.yaml", cfg)),
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
    assert done.returncode == 1
    line = f"another training of {cfg.out_dir} is running (pid {os.getpid()})"
    assert done.stderr.strip().splitlines() == [f"error: {line}"]
    assert not cfg.out_dir.exists()
