"""A dask client for the parallel stages: a local cluster by default, or a scheduler address.

The local cluster's nannies and workers die with the process that started it (``uvgen.lifetime``
preloaded in both), so a killed stage never leaves workers writing behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import dask
import yaml

from uvgen.lifetime import OWNER_ENV

DASK_CONFIG = Path(__file__).resolve().parents[1] / "pipeline" / "dask.yaml"


def apply_dask_config(path: Path = DASK_CONFIG) -> None:
    """Merge the project's dask configuration file into dask's global configuration."""
    with open(path) as fh:
        dask.config.update(dask.config.config, yaml.safe_load(fh), priority="new")


@contextlib.contextmanager
def dask_client(
    n_workers: int, scheduler_address: str | None = None
) -> Iterator[distributed.Client]:  # noqa: F821
    """A distributed client: ``scheduler_address`` (a real cluster) or a local cluster of
    ``n_workers`` processes with one thread each, which exit when this process dies."""
    from distributed import Client, LocalCluster

    apply_dask_config()
    if scheduler_address:
        with Client(scheduler_address) as client:
            yield client
        return
    with (
        _owner_env(),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            preload=["uvgen.lifetime"],
            preload_nanny=["uvgen.lifetime"],
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def _owner_env() -> Iterator[None]:
    """Name this process as the owner of the processes started in the block (inherited env)."""
    before = os.environ.get(OWNER_ENV)
    os.environ[OWNER_ENV] = str(os.getpid())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = before
