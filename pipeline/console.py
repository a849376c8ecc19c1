"""Console-script entry points (pyproject.toml ``[project.scripts]``), each under
:func:`pipeline.stage.run` (one-line errors, ``--debug``)."""

from __future__ import annotations

from typing import NoReturn

from pipeline.stage import run


def prnet() -> NoReturn:
    """``prnet``: :func:`pipeline.cli.main`."""
    from pipeline.cli import main

    run(main, with_parent=False)
