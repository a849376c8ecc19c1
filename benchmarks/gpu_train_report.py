"""Summarise a training run's checkpoint for the GPU check: where it stands and whether it is sane.

    python benchmarks/gpu_train_report.py OUT_DIR [--json FILE] [--after EARLIER.json]

Reads ``OUT_DIR/checkpoints/last.pt`` (model.checkpoint's format) and prints the epoch, the global
step, the per-epoch training losses so far, and whether every weight and every loss is finite.
``--after`` compares with the report of an earlier run of the same directory: a resumed run must
stand further on (a larger global step) and keep the earlier epochs' history, which a run that
started again from scratch in less time could not. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch


def summarise(out_dir: Path) -> dict:
    """Progress, losses and finiteness of the run in ``out_dir``."""
    ckpt = torch.load(out_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    progress = ckpt["progress"]
    losses = [row["train_loss"] for row in progress.get("history", [])]
    weights_finite = all(
        torch.isfinite(t).all().item()
        for t in ckpt["model"].values()
        if torch.is_tensor(t) and t.is_floating_point()
    )
    return {
        "epoch": progress["epoch"],
        "global_step": progress["global_step"],
        "train_losses": losses,
        "weights_finite": weights_finite,
        "losses_finite": all(math.isfinite(x) for x in losses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--after", type=Path, default=None, help="the earlier run's report (JSON)")
    args = parser.parse_args()
    try:
        report = summarise(args.out_dir)
    except (OSError, RuntimeError, KeyError) as exc:
        print(f"gpu_train_report: {args.out_dir}: no readable checkpoint ({exc})")
        sys.exit(1)
    failures = []
    if not (report["weights_finite"] and report["losses_finite"]):
        failures.append("NaN or inf in the weights or the losses")
    losses = report["train_losses"]
    if len(losses) >= 2 and not losses[-1] < losses[0]:
        failures.append(f"training loss did not fall ({losses[0]:.4f} -> {losses[-1]:.4f})")
    if args.after is not None:
        before = json.loads(args.after.read_text())
        if report["global_step"] <= before["global_step"]:
            failures.append(
                f"global step {report['global_step']} is not past the killed run's "
                f"{before['global_step']}: "
                "the run did not continue from the checkpoint"
            )
        if losses[: len(before["train_losses"])] != before["train_losses"]:
            failures.append("the earlier epochs' history was not kept")
    shown = (
        ", ".join(f"{x:.4f}" for x in losses[:3])
        + (" ... " if len(losses) > 4 else ", ")
        + ", ".join(f"{x:.4f}" for x in losses[3:][-1:])
        if losses
        else "none yet"
    )
    print(
        f"run {args.out_dir}: epoch {report['epoch']}, global step {report['global_step']}; "
        f"epoch train losses {shown}; "
        f"finite: {report['weights_finite'] and report['losses_finite']}"
    )
    print("checks: " + ("ok" if not failures else "FAILED: " + "; ".join(failures)))
    if args.json:
        args.json.write_text(json.dumps({**report, "failures": failures}, indent=2))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
