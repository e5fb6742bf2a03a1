"""byhand.data: the real MNIST facts, IDX checks, checked downloads, atomic writes, safe pickles."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from byhand import data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
ROW_5_OF_FIRST_IMAGE = [3, 18, 18, 18, 126, 136, 175, 26, 166, 255, 247, 127]


@pytest.fixture(scope="module")
def mnist() -> data.Dataset:
    try:
        return data.load_mnist(download=False)
    except FileNotFoundError as exc:
        pytest.fail(f"MNIST is not prepared; run `make data` first.\n{exc}")


def test_real_mnist_matches_the_published_facts(mnist: data.Dataset) -> None:
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert torch.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert mnist.train_images[0, 5, 12:24].tolist() == ROW_5_OF_FIRST_IMAGE
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def _write(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_idx_round_trip(tmp_path: Path) -> None:
    t = torch.randint(0, 256, (7, 3, 2), dtype=torch.uint8)
    data.write_idx(tmp_path / "x.gz", t)
    assert torch.equal(data.read_idx(tmp_path / "x.gz"), t)
    assert [p.name for p in tmp_path.iterdir()] == ["x.gz"]


def test_corrupt_file_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "train-images-idx3-ubyte.gz", b"this is not gzip at all")
    with pytest.raises(data.CorruptFileError, match="not a readable gzip file"):
        data.read_idx(path)
    path = _write(tmp_path / "bad-magic.gz", gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 12))
    with pytest.raises(data.CorruptFileError, match="not an IDX file"):
        data.read_idx(path)


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    data.write_idx(tmp_path / "full.gz", torch.zeros(10, 28, 28, dtype=torch.uint8))
    raw = gzip.decompress((tmp_path / "full.gz").read_bytes())
    path = _write(tmp_path / "cut.gz", gzip.compress(raw[:-100]))
    with pytest.raises(data.CorruptFileError, match=r"shape \(10, 28, 28\) \(7840 bytes"):
        data.read_idx(path)
    half_gzip = _write(tmp_path / "half.gz", (tmp_path / "full.gz").read_bytes()[:40])
    with pytest.raises(data.CorruptFileError):
        data.read_idx(half_gzip)


def test_wrong_shapes_are_rejected_on_load(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    for name in data.MNIST_FILES:
        data.write_idx(folder / name, torch.zeros(5, 28, 28, dtype=torch.uint8)
                       if "images" in name else torch.zeros(5, dtype=torch.uint8))
    with pytest.raises(data.CorruptFileError, match="must hold 60000 images"):
        data.load_mnist(tmp_path, download=False)


def _md5(payload: bytes) -> str:
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


def test_download_checks_md5_and_falls_back_to_the_next_mirror(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    _write(bad / "f.gz", b"tampered")
    _write(good / "f.gz", b"the real bytes")
    mirrors = [(tmp_path / "absent").as_uri() + "/", bad.as_uri() + "/", good.as_uri() + "/"]
    dest = tmp_path / "cache"
    path = data.download("f.gz", _md5(b"the real bytes"), mirrors, dest)
    assert path.read_bytes() == b"the real bytes"
    assert sorted(p.name for p in dest.iterdir()) == ["f.gz"]


def test_download_with_wrong_hash_everywhere_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    _write(bad / "f.gz", b"tampered")
    dest = tmp_path / "cache"
    with pytest.raises(OSError, match=r"MD5 .* is not the expected"):
        data.download("f.gz", _md5(b"original"), [bad.as_uri() + "/"], dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        data.write_idx(tmp_path / "x.gz", torch.zeros(3, dtype=torch.uint8))
    assert list(tmp_path.iterdir()) == []


def test_missing_files_say_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message and "make data" in message
    assert "train-images-idx3-ubyte.gz" in message
    monkeypatch.setattr(data, "MNIST_MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(FileNotFoundError, match="could not download"):
        data.load_mnist(tmp_path, download=True)
    assert not any((tmp_path / "mnist").glob("*"))


def test_data_root_prefers_argument_then_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BYHAND_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("BYHAND_DATA")
    assert data.data_root() == Path.home() / ".cache" / "byhand"


def test_pickle_with_wrong_hash_is_never_opened(tmp_path: Path) -> None:
    payload = gzip.compress(pickle.dumps(([], [], [])))
    with pytest.raises(data.CorruptFileError, match="SHA-256 must be"):
        data.prepare_from_pickle(payload, tmp_path)
    assert list(tmp_path.iterdir()) == []


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code() -> None:
    import io

    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        data._ArrayUnpickler(io.BytesIO(pickle.dumps(_Exploit()))).load()


def test_restricted_unpickler_loads_arrays() -> None:
    import io

    import numpy as np

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    loaded = data._ArrayUnpickler(io.BytesIO(pickle.dumps(array, protocol=2))).load()
    assert np.array_equal(loaded, array)


def test_prepare_command_accepts_existing_data(capsys, mnist: data.Dataset) -> None:
    assert data.main(["prepare"]) == 0
    assert "MNIST is ready" in capsys.readouterr().out


@pytest.fixture(scope="module")
def fashion() -> data.Dataset:
    if not all((data.FASHION_SYSTEM_DIR / n).exists() for n in data.FASHION_FILES):
        pytest.skip(
            "Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` puts "
            f"the IDX files in {data.FASHION_SYSTEM_DIR}"
        )
    return data.load_fashion_mnist(download=False)


def test_real_fashion_mnist_through_the_idx_reader(fashion: data.Dataset) -> None:
    assert fashion.train_images.shape == (60000, 28, 28)
    assert fashion.test_images.shape == (10000, 28, 28)
    assert torch.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert torch.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert fashion.classes[9] == "Ankle boot"
    assert int(fashion.train_images.max()) == 255 and int(fashion.train_images.min()) == 0
