"""The shared training loop (model.trainer) on a toy regression task: choosing the checkpoint to
resume from, a run stopped mid-epoch and resumed ending bit-identical, the history files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from model.checkpoint import Progress, save_checkpoint
from model.data import EpochBatchSampler
from model.train import state_digest
from model.train_settings import make_scheduler
from model.trainer import CHECKPOINT_NAME, WEIGHTS_NAME, Task, fit, open_checkpoint, training_lock

N, BATCH = 24, 4  # 6 steps per epoch


@dataclass(frozen=True)
class ToyConfig:
    out_dir: Path
    epochs: int = 2
    batch_size: int = BATCH
    seed: int = 5
    checkpoint_every: int = 4
    progress: bool = False
    resume: bool = True
    lr: float = 1e-2
    lr_schedule: str = "onecycle"
    lr_step_epochs: int = 1
    lr_gamma: float = 0.5
    warmup_frac: float = 0.2


class Stop(Exception):
    pass


def _task(cfg: ToyConfig, stop_at: int | None = None) -> Task:
    torch.manual_seed(cfg.seed)
    x = torch.randn(N, 3, generator=torch.Generator().manual_seed(1))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Linear(3, 1)
    sampler = EpochBatchSampler(N, cfg.batch_size, cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    calls = [0]

    class Loader:
        def __iter__(self):
            for idx in sampler:
                yield x[idx], y[idx]

    def loss(net: nn.Module, batch, generator: torch.Generator, epoch: int) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == stop_at:
            raise Stop
        xb, yb = batch
        noise = 0.05 * torch.randn(xb.shape, generator=generator)  # the step's seeded draws
        return ((net(xb + noise) - yb) ** 2).mean()

    return Task(
        name="toy",
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, cfg, sampler.steps_per_epoch),
        sampler=sampler,
        loader=Loader(),
        device=torch.device("cpu"),
        fingerprint="toy-fingerprint",
        meta={"kind": "toy"},
        loss=loss,
        save_weights=lambda path: torch.save(model.state_dict(), path),
        evaluate=lambda epoch: {"val_loss": float(epoch), "val_nme_pct": 1.0},
        extra={"toy": True},
    )


def _run(cfg: ToyConfig, stop_at: int | None = None) -> tuple[Task, object]:
    task = _task(cfg, stop_at)
    return task, fit(cfg, task, open_checkpoint(cfg, task.fingerprint, task.device, "toy"))


def test_stopped_mid_epoch_and_resumed_ends_bit_identical(tmp_path: Path) -> None:
    straight, done = _run(ToyConfig(tmp_path / "a", resume=False))
    cfg = ToyConfig(tmp_path / "b")
    with pytest.raises(Stop):
        _run(cfg, stop_at=10)  # steps 1-9 done; the checkpoint at global step 8 (epoch 2, step 2)
    resumed, again = _run(cfg)
    assert again.resumed_from is not None and again.resumed_from.global_step == 8
    assert state_digest(resumed.model) == state_digest(straight.model)
    assert [r["train_loss"] for r in again.history] == [r["train_loss"] for r in done.history]
    assert [r["step"] for r in done.history] == [6, 12]
    with open(cfg.out_dir / "loss.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and rows[1]["val_loss"] == "1.0"
    metrics = json.loads((cfg.out_dir / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["toy"] is True
    assert metrics["first_train_loss"] == done.history[0]["train_loss"]
    assert (cfg.out_dir / WEIGHTS_NAME).is_file()
    for name in ("loss.csv", "metrics.json"):  # the lr of epoch 2 is its first step's
        assert (cfg.out_dir / name).read_bytes() == (tmp_path / "a" / name).read_bytes(), name


def test_open_checkpoint_resumes_only_a_matching_readable_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ToyConfig(tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    cpu = torch.device("cpu")
    assert open_checkpoint(cfg, "fp", cpu, "toy") is None  # no file: silently fresh
    model = nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = make_scheduler(optimizer, cfg, 3)

    def write(epoch: int, fingerprint: str = "fp") -> None:
        save_checkpoint(
            path,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            progress=Progress(epoch=epoch),
            fingerprint=fingerprint,
            meta={},
        )

    write(1)
    assert open_checkpoint(cfg, "fp", cpu, "toy")["progress"]["epoch"] == 1
    assert open_checkpoint(ToyConfig(tmp_path, resume=False), "fp", cpu, "toy") is None
    assert open_checkpoint(cfg, "other", cpu, "toy") is None
    assert "other settings" in capsys.readouterr().out
    write(3)  # past epochs=2
    assert open_checkpoint(cfg, "fp", cpu, "toy") is None
    assert "past epoch 2" in capsys.readouterr().out
    path.write_bytes(b"damaged")
    assert open_checkpoint(cfg, "fp", cpu, "toy") is None
    assert "cannot be read" in capsys.readouterr().out


def test_training_lock_removes_temporaries_of_a_killed_run(tmp_path: Path):
    """Issue 23 item 5: a checkpoint-sized ``.last.pt.PID.TOKEN.tmp`` left by a kill during a
    checkpoint write is removed when the next training of the folder starts; others' files stay."""
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    stale = [ckpt_dir / ".last.pt.4242.0a1b2c3d.tmp", tmp_path / ".model.pt.7.deadbeef.tmp"]
    stale[0].write_bytes(b"\0" * (1 << 20))
    stale[1].write_bytes(b"x")
    (tmp_path / "loss.csv.tmp").write_text("epoch\n")
    kept = [tmp_path / "notes.tmp", ckpt_dir / ".other.pt.1.00000000.tmp"]
    for path in kept:
        path.write_text("not ours")
    with training_lock(tmp_path):
        assert not any(p.exists() for p in stale) and not (tmp_path / "loss.csv.tmp").exists()
    assert all(p.exists() for p in kept)
