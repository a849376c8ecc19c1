"""``prnet predict`` over many images at the network's speed: a three-stage pipeline.

1. ``workers`` threads read (decode) each image, find its faces (a detector per thread; dlib's
   detectors and Pillow's decoders release the GIL) and crop them (:meth:`model.api.PRN.prepare`);
2. the calling thread runs the network on the crops of consecutive images in batches of
   ``batch_size`` faces (an image's faces are never split across two passes... unless it has
   more than ``batch_size`` of them, then the predictor splits them);
3. ``workers`` threads decode the maps and write each image's outputs.

How the stages share the machine depends on where the network runs:

* **on the CPU** (phased): torch's threads already fill the cores, and a prepare or write
  thread that runs beside them stalls both (a forward pass waits at every layer for the thread
  that lost its core). So the stages take turns: the workers write batch k and prepare batch
  k + 1 together, then the network runs batch k + 1 alone, and so on. The work outside the
  network still runs on all cores, and the network never waits;
* **on a GPU** (overlapped): the CPU is free while the GPU computes, so the workers prepare
  and write while the next batch runs.

Results are emitted in input order: what is printed, and the rows of ``report.csv``, are those of
the one-image-at-a-time loop (``workers=0``, which runs every stage in the calling thread). Both
lookaheads are bounded, so memory stays at a few batches. An interrupt (Ctrl-C) cancels what has
not started; files already being written finish atomically (never a partial file), as before.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.api import PRN, NoFaceError, PreparedImage
from model.detector import DetectorUnavailable, FaceRegionError
from uvgen.formats.errors import DataError

#: Per-image failures that are reported (``report.csv``) while the other images go on.
IMAGE_FAILURES = (NoFaceError, FaceRegionError, DetectorUnavailable, DataError)


@dataclass
class Emitted:
    """What one image gave, in input order: its ``report.csv`` row and its messages."""

    row: tuple[str, int, str, str]
    out_lines: list[str]
    err_lines: list[str]


class _Immediate:
    """A finished future's ``result()`` for the serial path."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._value = fn(*args)

    def result(self) -> Any:
        return self._value


def _ordered(
    pool: ThreadPoolExecutor | None, fn: Callable[..., Any], items: Iterable[Any], ahead: int
) -> Iterator[tuple[Any, Any]]:
    """(item, fn(item)) in the order of ``items``, with up to ``ahead`` calls in flight on
    ``pool`` (None: each call in turn, here)."""
    pending: deque[tuple[Any, Future | _Immediate]] = deque()
    for item in items:
        pending.append((item, pool.submit(fn, item) if pool else _Immediate(fn, item)))
        while len(pending) > (ahead if pool else 0):
            head, fut = pending.popleft()
            yield head, fut.result()
    while pending:
        head, fut = pending.popleft()
        yield head, fut.result()


def run_stream(
    prn: PRN,
    jobs: Iterable[tuple[Any, Callable[[Any], PreparedImage]]],
    write: Callable[[Any, PreparedImage | Exception, np.ndarray | None], Emitted],
    emit: Callable[[Emitted], None],
    workers: int = 2,
    batch_size: int = 8,
    overlap: bool | None = None,
) -> None:
    """Run ``jobs`` (key, prepare) through the pipeline: ``prepare(key)`` in a worker (a
    :class:`PreparedImage`, or raises one of :data:`IMAGE_FAILURES`), the network in the calling
    thread, ``write(key, prepared or the failure, maps)`` in a worker; ``emit`` gets each
    :class:`Emitted` in the order of ``jobs``, in the calling thread. ``overlap``: the workers run
    beside the network (default: only when it runs on a GPU; on the CPU the stages take turns,
    see the module docstring)."""
    local = threading.local()

    def prepare(job: tuple[Any, Callable]) -> PreparedImage | Exception:
        key, fn = job
        try:
            if not workers:
                return fn(key, None)
            if not hasattr(local, "detector"):
                local.detector = _LazyDetector(prn)
            return fn(key, local.detector)
        except IMAGE_FAILURES as exc:
            return exc

    if overlap is None:
        overlap = prn.predictor.device.type != "cpu"
    if workers and not overlap:
        _run_phased(prn, jobs, prepare, write, emit, workers, batch_size)
        return

    def flush(batch: list[tuple[Any, PreparedImage | Exception]]) -> None:
        for key, prepared, face_maps in _network(prn, batch):
            writes.append(
                writer.submit(write, key, prepared, face_maps)
                if writer
                else _Immediate(write, key, prepared, face_maps)
            )
        # up to two batches of images wait for their writes, so the network rarely waits
        while len(writes) > (2 * batch_size + workers if writer else 0):
            emit(writes.popleft().result())

    pool = ThreadPoolExecutor(workers, thread_name_prefix="prepare") if workers else None
    writer = ThreadPoolExecutor(workers, thread_name_prefix="write") if workers else None
    writes: deque[Future | _Immediate] = deque()
    try:
        batch: list[tuple[Any, PreparedImage | Exception]] = []
        n_crops = 0
        ahead = 2 * workers + batch_size
        for (key, _), prepared in _ordered(pool, prepare, jobs, ahead):
            batch.append((key, prepared))
            if isinstance(prepared, PreparedImage):
                n_crops += len(prepared.crops)
            if n_crops >= batch_size or not pool:
                flush(batch)
                batch, n_crops = [], 0
        if batch:
            flush(batch)
        while writes:
            emit(writes.popleft().result())
    finally:
        for ex in (pool, writer):
            if ex is not None:
                ex.shutdown(wait=True, cancel_futures=True)


def _network(
    prn: PRN, batch: list[tuple[Any, PreparedImage | Exception]]
) -> list[tuple[Any, PreparedImage | Exception, np.ndarray | None]]:
    """(key, prepared, its faces' maps or None) for each image of ``batch``: the crops of all its
    prepared images through the network together."""
    crops = [p.crops for _, p in batch if isinstance(p, PreparedImage)]
    maps = prn.predictor.predict_maps(np.concatenate(crops)) if crops else None
    out, start = [], 0
    for key, prepared in batch:
        face_maps = None
        if isinstance(prepared, PreparedImage):
            face_maps = maps[start : start + len(prepared.crops)]
            start += len(prepared.crops)
        out.append((key, prepared, face_maps))
    return out


def _run_phased(
    prn: PRN,
    jobs: Iterable[tuple[Any, Callable]],
    prepare: Callable[[tuple[Any, Callable]], PreparedImage | Exception],
    write: Callable[[Any, PreparedImage | Exception, np.ndarray | None], Emitted],
    emit: Callable[[Emitted], None],
    workers: int,
    batch_size: int,
) -> None:
    """:func:`run_stream` with the stages taking turns: the ``workers`` threads write the last
    batch and prepare the next ``batch_size`` images, then the network runs that batch alone."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="predict")
    try:
        todo = iter(jobs)
        done: list[tuple[Any, PreparedImage | Exception, np.ndarray | None]] = []
        while True:
            batch = list(itertools.islice(todo, batch_size))
            if not batch and not done:
                break
            writes = [pool.submit(write, *d) for d in done]  # the longer tasks first
            ready = [pool.submit(prepare, job) for job in batch]
            for fut in writes:
                emit(fut.result())
            done = _network(prn, [(job[0], fut.result()) for job, fut in zip(batch, ready)])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _LazyDetector:
    """A worker thread's own face detector, made on its first call (images with a box or
    landmarks never load one)."""

    def __init__(self, prn: PRN):
        self._prn = prn
        self._detector = None

    def __call__(self, image: np.ndarray):
        if self._detector is None:
            self._detector = self._prn.new_detector()
        return self._detector(image)
