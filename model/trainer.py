"""The one training loop that PRN (model.train) and the baselines (model.baselines.train_baseline)
plug into: epochs, per-step learning-rate schedule, checkpoints, resume, progress, history, DDP.

A trainer builds its network, optimiser, scheduler, sampler and loader, computes its run
fingerprint, asks :func:`open_checkpoint` for a checkpoint to resume from (it may need the
checkpoint's ``meta`` to build, as the baselines' whitening does), and hands a :class:`Task` to
:func:`fit`. The task says what differs between trainers: the loss of a batch (batch preparation,
augmentation, forward pass), the validation at an epoch's end, extra history fields, the final
weights file.

Per step: the augmentation generator is seeded from (seed, global step, rank), the task's loss
is minimised by one optimiser step, the scheduler steps. Every ``checkpoint_every`` global steps
(not at an epoch's last step) and at each epoch end ``checkpoints/last.pt`` is written (rank 0,
atomic, model.checkpoint), then ``loss.csv`` / ``timing.csv`` / ``metrics.json``
(:func:`write_history`). Multi-process (model.distributed): the network is wrapped in
DistributedDataParallel, losses are summed over ranks, batch-norm buffers are broadcast before
validation, rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from model.checkpoint import Progress, load_checkpoint, restore_checkpoint, save_checkpoint
from model.data import EpochBatchSampler, derived_seed
from model.distributed import DistInfo, all_reduce_sum, barrier, broadcast_buffers
from uvgen.atomic import atomic_write_text
from uvgen.resumable import exclusive_lock, remove_stale_temporaries

CHECKPOINT_NAME = "checkpoints/last.pt"
WEIGHTS_NAME = "model.pt"
METRICS_NAME = "metrics.json"
TABLE_NAME = "loss.csv"
TABLE_COLUMNS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_nme_pct")
# Measured speed goes to its own file, outside DVC's outputs: timings differ from run to run, and
# the tracked outputs must depend on the parameters alone (a rerun must not change dvc.lock).
TIMING_NAME = "timing.csv"
TIMING_COLUMNS = ("epoch", "images_per_s", "epoch_time_s")


def _write_rows(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """A CSV of the given columns (None as empty), written atomically."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    atomic_write_text(path, text.getvalue())


def write_history(
    out_dir: Path,
    history: list[dict[str, Any]],
    columns: Sequence[str] = TABLE_COLUMNS,
    extra: dict[str, Any] | None = None,
) -> None:
    """loss.csv (``columns`` of every epoch), timing.csv (not a DVC output; see TIMING_NAME) and
    metrics.json (the last epoch's ``columns``, the first train loss and ``extra``), each atomic."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_rows(out_dir / TABLE_NAME, history, columns)
    _write_rows(out_dir / TIMING_NAME, history, TIMING_COLUMNS)
    last = history[-1] if history else {}
    metrics = {k: last[k] for k in columns if last.get(k) is not None}
    if history:
        metrics["first_train_loss"] = history[0]["train_loss"]
    metrics.update(extra or {})
    atomic_write_text(out_dir / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")


@contextlib.contextmanager
def training_lock(out_dir: Path, info: DistInfo = DistInfo()) -> Iterator[None]:
    """One training per output folder: rank 0 holds ``out_dir``'s lock (the UV build's,
    uvgen.resumable) for the block; a second training stops at once with ``BuildLockedError``
    ("another training of DIR is running (pid N)"). Temporaries left by a killed run are removed.
    """
    with exclusive_lock(Path(out_dir), "training") if info.is_main else contextlib.nullcontext():
        if info.is_main:  # temporaries of a killed run (a checkpoint-sized one among them)
            names = (CHECKPOINT_NAME, WEIGHTS_NAME, METRICS_NAME, TABLE_NAME, TIMING_NAME)
            remove_stale_temporaries(*(Path(out_dir) / n for n in names))
        yield


def open_checkpoint(
    cfg: Any, fingerprint: str, device: torch.device, name: str, info: DistInfo = DistInfo()
) -> dict[str, Any] | None:
    """The checkpoint ``cfg.out_dir/checkpoints/last.pt`` to resume from, or None.

    None when ``cfg.resume`` is off or there is no file, and (with a one-line note naming the
    reason, prefixed ``name``) when the file cannot be read, was written with another
    ``fingerprint`` or is past ``cfg.epochs``: the run then starts from scratch.
    """
    path = Path(cfg.out_dir) / CHECKPOINT_NAME
    if not (cfg.resume and path.is_file()):
        return None
    try:
        ckpt = load_checkpoint(path, map_location=device)
    except Exception as exc:  # unreadable (other torch version, damaged disk): not resumable
        ckpt, why = None, f"cannot be read ({exc})"
    else:
        why = "was written with other settings, data or code"
        if ckpt["fingerprint"] == fingerprint:
            if ckpt["progress"]["epoch"] <= cfg.epochs:
                return ckpt
            why = f"is past epoch {cfg.epochs} (epoch {ckpt['progress']['epoch']})"
    if info.is_main:
        tqdm.write(f"{name}: {path} {why}; starting afresh")
    return None


@dataclass
class Task:
    """What one trainer plugs into :func:`fit`.

    ``model``: the bare network (checkpointed, saved, returned). ``loss(net, batch, generator,
    epoch)``: the loss (with its graph) of one loader batch through ``net`` (``model`` or its
    DDP / compiled wrapper), ``generator`` seeded for this step's augmentation draws.
    ``evaluate(epoch)``: validation numbers merged into the epoch's row (None: no validation).
    ``row_fields(epoch)``: extra fields of the epoch's row, placed after ``lr``.
    ``save_weights(path)``: the final weights file. ``columns`` / ``extra``: loss.csv columns and
    metrics.json additions (:func:`write_history`). ``name``: log prefix; ``label``: progress-bar
    prefix.
    """

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: EpochBatchSampler
    loader: Iterable[Any]
    device: torch.device
    fingerprint: str
    meta: dict[str, Any]
    loss: Callable[[nn.Module, Any, torch.Generator, int], torch.Tensor]
    save_weights: Callable[[Path], None]
    evaluate: Callable[[int], dict[str, float]] | None = None
    row_fields: Callable[[int], dict[str, Any]] = lambda epoch: {}
    columns: Sequence[str] = TABLE_COLUMNS
    extra: dict[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass
class FitResult:
    """What :func:`fit` returns: the per-epoch rows and the progress resumed from (None: fresh)."""

    history: list[dict[str, Any]]
    resumed_from: Progress | None


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """Back-propagate ``loss`` and take one optimiser step; returns the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def lr_at(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> float:
    """The first parameter group's learning rate at global ``step``: what the scheduler set then
    (so a run resumed mid-epoch logs its epoch's first-step rate, as an uninterrupted one does)."""
    return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](step)


def fit(
    cfg: Any, task: Task, ckpt: dict[str, Any] | None, info: DistInfo = DistInfo()
) -> FitResult:
    """Train ``task`` (from ``ckpt`` if given, see :func:`open_checkpoint`) to ``cfg.epochs``.

    ``cfg`` gives ``epochs``, ``batch_size`` (global), ``seed``, ``checkpoint_every`` (steps; 0 =
    only at epoch ends), ``progress``, ``out_dir`` and optionally ``compile``.
    """
    model, optimizer, scheduler, device = task.model, task.optimizer, task.scheduler, task.device
    ckpt_path = Path(cfg.out_dir) / CHECKPOINT_NAME
    progress, resumed = Progress(), None
    if ckpt is not None:
        progress = restore_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
        resumed = dataclasses.replace(progress, history=list(progress.history))
        if info.is_main:
            tqdm.write(
                f"{task.name}: resuming from {ckpt_path} at epoch {progress.epoch + 1}, "
                f"step {progress.step_in_epoch} (global step {progress.global_step})"
            )
    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if getattr(cfg, "compile", False):
        net = torch.compile(net)
    generator = torch.Generator(device=device)
    steps = task.sampler.steps_per_epoch

    def checkpoint(loss_sum: float) -> None:
        progress.loss_sum = loss_sum
        if info.is_main:
            save_checkpoint(
                ckpt_path,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                progress=progress,
                fingerprint=task.fingerprint,
                meta=task.meta,
            )

    for epoch in range(progress.epoch, cfg.epochs):
        task.sampler.set_epoch(epoch, progress.step_in_epoch)
        model.train()
        lr = lr_at(scheduler, progress.global_step - progress.step_in_epoch)  # epoch's first step
        # rank 0 carries the (all-rank) loss sum saved mid-epoch; the others start from 0
        loss_acc = torch.tensor(
            progress.loss_sum if info.is_main else 0.0, dtype=torch.float64, device=device
        )
        done_before, t0 = progress.step_in_epoch, time.perf_counter()
        bar = tqdm(
            total=steps,
            initial=progress.step_in_epoch,
            desc=f"{task.label}epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and info.is_main),
            dynamic_ncols=True,
            mininterval=1.0,
        )
        for batch in task.loader:
            generator.manual_seed(
                derived_seed("augment", cfg.seed, progress.global_step, info.rank)
            )
            loss = optimizer_step(optimizer, task.loss(net, batch, generator, epoch))
            scheduler.step()
            loss_acc += loss.double()
            progress.step_in_epoch += 1
            progress.global_step += 1
            bar.update(1)
            if progress.step_in_epoch % 10 == 0 or progress.step_in_epoch == steps:
                bar.set_postfix(
                    loss=f"{float(loss):.4f}",
                    lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                    refresh=False,
                )
            if (
                cfg.checkpoint_every
                and progress.global_step % cfg.checkpoint_every == 0
                and progress.step_in_epoch < steps
            ):
                checkpoint(float(all_reduce_sum(loss_acc.clone(), info)))
        bar.close()
        total = float(all_reduce_sum(loss_acc.clone(), info))  # also waits for the device
        elapsed = time.perf_counter() - t0
        fields = task.row_fields(epoch)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": progress.global_step,
            "lr": lr,
            **fields,
            "train_loss": total / (steps * info.world_size),
            "val_loss": None,
            "val_nme_pct": None,
            "images_per_s": (progress.step_in_epoch - done_before)
            * cfg.batch_size
            / max(elapsed, 1e-9),
            "epoch_time_s": elapsed,
        }
        broadcast_buffers(model, info)  # each rank updated its BN statistics on its own batches
        if task.evaluate is not None:
            row.update(task.evaluate(epoch))
        progress.history.append(row)
        progress.epoch, progress.step_in_epoch = epoch + 1, 0
        checkpoint(0.0)
        if info.is_main:
            write_history(cfg.out_dir, progress.history, task.columns, task.extra)
            kinds = f" ({', '.join(map(str, fields.values()))})" if fields else ""
            val = (
                f", val loss {row['val_loss']:.4f}, val NME {row['val_nme_pct']:.2f} %"
                if row["val_loss"] is not None
                else ""
            )
            tqdm.write(
                f"{task.label}epoch {epoch + 1}{kinds}: train loss {row['train_loss']:.4f}{val}, "
                f"{row['images_per_s']:.1f} img/s"
            )
        barrier(info)

    if info.is_main:
        write_history(cfg.out_dir, progress.history, task.columns, task.extra)
        task.save_weights(Path(cfg.out_dir) / WEIGHTS_NAME)
    barrier(info)
    return FitResult(history=progress.history, resumed_from=resumed)


__all__ = [
    "Task",
    "FitResult",
    "fit",
    "open_checkpoint",
    "training_lock",
    "optimizer_step",
    "write_history",
]
