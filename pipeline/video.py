"""Video files as inputs of ``prnet predict``: their frames, one RGB image each, through PyAV.

A video's frames are named ``STEM_frame_NNNNNN`` (0-based decoding order, six digits), so each
frame's outputs are ``STEM_frame_000123_kpt.txt`` and so on, and its ``report.csv`` image is
``PATH#frame_000123``. A folder of frames needs none of this: it is a folder of images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from uvgen.formats.errors import DataError

#: File suffixes read as videos (any other file is read as an image).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frame_name(stem: str, index: int) -> str:
    """The output name of frame ``index`` of the video ``STEM.*``."""
    return f"{stem}_frame_{index:06d}"


def frame_label(path: Path, index: int) -> str:
    """How ``report.csv`` and messages name frame ``index`` of the video at ``path``."""
    return f"{path}#frame_{index:06d}"


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of the video at ``path``, in decoding order. Raises DataError
    (one line naming the file) when PyAV is missing or the file is not a readable video."""
    try:
        import av
    except ImportError:
        raise DataError(
            path, None, "reading a video needs PyAV (pip install av); a folder of frames works"
        ) from None
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        why = getattr(exc, "strerror", None) or exc  # FFmpeg's reason without the path again
        raise DataError(path, None, f"not a readable video ({why})") from None
    with container:
        if not container.streams.video:
            raise DataError(path, None, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            why = getattr(exc, "strerror", None) or exc
            raise DataError(path, None, f"video decoding failed ({why})") from None
