"""model.h5dataset: the torch Dataset over a UV ground-truth file (DataLoader workers, pickling,
validation, and decoding bit-identical to uvgen.h5store's numpy reader)."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from model.data import write_toy_file
from model.h5dataset import PositionMapDataset, decode_posmap_tensor
from uvgen.formats.errors import DataError
from uvgen.h5codec import decode_posmap
from uvgen.h5store import PositionMapFile


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_toy_file(tmp_path_factory.mktemp("h5ds") / "toy.h5", n=12, size=32)


def test_dataset_in_dataloader_with_workers(toy: Path):
    with PositionMapFile(toy) as f:
        images = np.stack([f.image(i) for i in range(len(f))])
        posmaps = np.stack([f.posmap(i) for i in range(len(f))])
    subset = [7, 1, 4, 10, 0]
    ds = PositionMapDataset(toy, indices=subset)
    assert len(ds) == len(subset)
    img0, pm0 = ds[0]  # opens a handle in this process before the workers fork
    assert img0.dtype == torch.uint8 and img0.shape == (32, 32, 3)
    assert pm0.dtype == torch.float32 and pm0.shape == (32, 32, 3)

    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    got_img = torch.cat([b[0] for b in loader]).numpy()
    got_pm = torch.cat([b[1] for b in loader]).numpy()
    np.testing.assert_array_equal(got_img, images[subset])
    np.testing.assert_array_equal(got_pm, posmaps[subset])  # the same decoding as the numpy reader

    clone = pickle.loads(pickle.dumps(ds))
    assert clone._f is None
    np.testing.assert_array_equal(clone[2][0].numpy(), images[4])
    ds.close()
    clone.close()
    with pytest.raises(IndexError):
        PositionMapDataset(toy, indices=[0, 12])


def test_torch_and_numpy_decoding_agree_bit_for_bit():
    rng = np.random.default_rng(0)
    stored = rng.uniform(-300, 300, size=(4, 8, 8, 3)).astype(np.float16)
    for offset in (128.0, 0.0):
        a = decode_posmap_tensor(stored, offset).numpy()
        b = decode_posmap(stored, offset)
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_invalid_file_is_refused_naming_the_field(toy: Path, tmp_path: Path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(toy.read_bytes())
    with h5py.File(broken, "a") as f:
        del f["posmaps"]
    with pytest.raises(DataError) as err:
        PositionMapDataset(broken)
    assert err.value.path == broken and err.value.field == "posmaps"
