"""A dask client for the parallel stages: a local cluster by default, or a scheduler address."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import dask
import yaml

DASK_CONFIG = Path(__file__).resolve().parents[1] / "pipeline" / "dask.yaml"


def apply_dask_config(path: Path = DASK_CONFIG) -> None:
    """Merge the project's dask configuration file into dask's global configuration."""
    with open(path) as fh:
        dask.config.update(dask.config.config, yaml.safe_load(fh), priority="new")


@contextlib.contextmanager
def dask_client(n_workers: int, scheduler_address: str | None = None) -> Iterator["distributed.Client"]:  # noqa: F821
    """A distributed client: ``scheduler_address`` (a real cluster) or a local cluster of
    ``n_workers`` processes with one thread each."""
    from distributed import Client, LocalCluster

    apply_dask_config()
    if scheduler_address:
        with Client(scheduler_address) as client:
            yield client
        return
    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        yield client
