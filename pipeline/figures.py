"""Stage `figures`: the paper's figures and tables as images, from the test file and the outputs of
the predict and evaluate stages.

Reads the ``figures`` section of params.yaml and runs :func:`eval.paper_figures.write_paper_figures`
(data selection there; drawing in eval/figures.py, eval/figure_tables.py,
eval/figure_qualitative.py): ``uv_space``, ``weight_mask`` and ``ced`` (PNG + PDF), ``nme_table``
and ``qualitative`` (PNG), ``runtime`` (.md + .png), all in ``out_dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.figure_settings import FigureSettings
from eval.paper_figures import write_paper_figures
from pipeline.config import DEFAULT_PARAMS
from pipeline.typed_yaml import display_path, read_section, read_yaml
from uvgen.resumable import exclusive_lock


def load_figures_params(path: str | Path = DEFAULT_PARAMS) -> FigureSettings:
    """The ``figures`` section of ``params.yaml``."""
    return read_section(
        FigureSettings, read_yaml(path).get("figures"), "figures", display_path(path)
    )


def run(p: FigureSettings) -> list[Path]:
    """The stage; returns every file written (PDFs included). One run per ``out_dir`` at a
    time."""
    with exclusive_lock(p.out_dir, "figures run"):
        return write_paper_figures(p)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    for path in run(load_figures_params(args.params)):
        print(f"figures: {path}")


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
