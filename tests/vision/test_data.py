"""Dataset loading, on small files written in each dataset's real on-disk format."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rkdo.vision import data
from rkdo.vision.data import DATASETS, DataError, DatasetSplits, ImageData, default_image_size, load

# --------------------------------------------------------------------------- helpers


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """An IDX file as the MNIST/Fashion-MNIST distributions ship it (uint8, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_fashion(folder: Path, compress: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (7, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 7),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3),
    }
    for stem, array in arrays.items():
        write_idx(folder / stem, array, compress)
    return arrays


@pytest.fixture
def skip_md5(monkeypatch):
    """Synthetic files cannot match the published MD5 sums that torchvision checks.

    torchvision's ``check_integrity(path, md5)`` is "file exists and its MD5 matches"; we keep
    the existence check and drop only the checksum, in the two modules that import it.
    """
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.stl10 as stl10

    def exists_only(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(cifar, "check_integrity", exists_only)
    monkeypatch.setattr(stl10, "check_integrity", exists_only)


# --------------------------------------------------------------------------- generic


def test_default_image_sizes_and_names():
    assert DATASETS == ("digits", "fashion-mnist", "cifar10", "cifar100", "stl10")
    sizes = {name: default_image_size(name) for name in DATASETS}
    assert sizes == {"digits": 8, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32, "stl10": 64}
    assert default_image_size("imagefolder:/somewhere") == 64
    with pytest.raises(ValueError, match="imagefolder:PATH"):
        default_image_size("mnist")
    with pytest.raises(ValueError, match="cifar10"):
        load("imagenet")


def test_image_data_validates_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


# --------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_stratified_and_complete():
    from sklearn.datasets import load_digits

    splits = load("digits")
    again = load("digits")
    assert isinstance(splits, DatasetSplits)
    assert (splits.channels, splits.image_size, splits.num_classes) == (1, 8, 10)
    assert (len(splits.train), len(splits.test)) == (1437, 360)
    assert splits.train.images.dtype == torch.uint8 and splits.train.labels.dtype == torch.int64
    assert torch.equal(splits.train.images, again.train.images)
    assert torch.equal(splits.test.labels, again.test.labels)

    # Stratified: each class's test share is 20% of its count, to within one image.
    reference = load_digits()
    counts = np.bincount(reference.target, minlength=10)
    test_counts = np.bincount(splits.test.labels.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * counts) <= 1.0)

    # Complete and correctly scaled: train + test is the whole data set, 0..16 -> 0..255.
    expected = np.rint(reference.images * 255 / 16).reshape(-1, 64)
    rows = np.concatenate(
        [
            np.column_stack([s.images.reshape(len(s), 64).numpy(), s.labels.numpy()])
            for s in (splits.train, splits.test)
        ]
    )
    want = np.column_stack([expected, reference.target])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(want, axis=0))
    assert rows.shape == want.shape
    assert int(splits.train.images.max()) == 255


# --------------------------------------------------------------------------- Fashion-MNIST


@pytest.mark.parametrize("layout", ["flat-gz", "torchvision-raw"])
def test_fashion_mnist_reads_idx_files(tmp_path, layout):
    if layout == "flat-gz":
        arrays = fake_fashion(tmp_path, compress=True)
    else:
        arrays = fake_fashion(tmp_path / "FashionMNIST" / "raw", compress=False)
    splits = load("fashion-mnist", root=tmp_path)
    assert splits.classes[0] == "T-shirt/top" and splits.num_classes == 10
    assert torch.equal(
        splits.train.images[:, 0],
        torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8)),
    )
    assert torch.equal(splits.train.labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"]))
    assert torch.equal(
        splits.test.images[:, 0],
        torch.from_numpy(arrays["t10k-images-idx3-ubyte"].astype(np.uint8)),
    )
    assert splits.test.labels.dtype == torch.int64


def test_read_idx_agrees_with_torchvision_reader(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    arrays = fake_fashion(tmp_path, compress=False, seed=3)
    ours = data.read_idx(tmp_path / "train-images-idx3-ubyte")
    theirs = read_image_file(str(tmp_path / "train-images-idx3-ubyte"))
    assert np.array_equal(ours, theirs.numpy())
    labels = read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte"))
    assert np.array_equal(data.read_idx(tmp_path / "t10k-labels-idx1-ubyte"), labels.numpy())
    assert np.array_equal(ours, arrays["train-images-idx3-ubyte"])


def test_broken_idx_file_is_a_data_error(tmp_path):
    fake_fashion(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        load("fashion-mnist", root=tmp_path)
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(10))
    with pytest.raises(DataError, match="not an IDX file"):
        data.read_idx(path)


def test_missing_fashion_mnist_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as info:
        load("fashion-mnist", root=tmp_path / "nothing")
    message = str(info.value)
    assert str(tmp_path / "nothing") in message
    assert str(tmp_path / "nothing" / "FashionMNIST" / "raw") in message
    for hint in ("apt-get install dataset-fashion-mnist", "--data-root", "--download"):
        assert hint in message


@pytest.mark.skipif(
    not Path(data.FASHION_MNIST_SYSTEM_ROOT, "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_system_fashion_mnist():
    splits = load("fashion-mnist")
    assert splits.train.images.shape == (60000, 1, 28, 28)
    assert splits.test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(splits.test.labels), torch.full((10,), 1000))


# --------------------------------------------------------------------------- CIFAR


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def fake_cifar10(
    root: Path, per_batch: int = 2
) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """cifar-10-batches-py: five training batches, a test batch and batches.meta.

    Each batch is a pickled dict with ``data`` (n, 3072) uint8 rows (1024 red, 1024 green,
    1024 blue values, each 32x32 in row-major order) and ``labels``.
    """
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    train_rows, train_labels = [], []
    for k in range(1, 6):
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _pickle(
            folder / f"data_batch_{k}", {"data": rows, "labels": labels, "batch_label": f"b{k}"}
        )
        train_rows.append(rows)
        train_labels += labels
    test_rows = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    test_labels = [1, 2, 3]
    _pickle(folder / "test_batch", {"data": test_rows, "labels": test_labels})
    names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch})
    return np.concatenate(train_rows), train_labels, test_rows, test_labels


def test_cifar10_pickle_batches(tmp_path, skip_md5):
    train_rows, train_labels, test_rows, test_labels = fake_cifar10(tmp_path)
    splits = load("cifar10", root=tmp_path)
    assert splits.classes[0] == "airplane" and splits.num_classes == 10
    assert splits.train.images.shape == (10, 3, 32, 32) and splits.image_size == 32
    assert splits.train.images.is_contiguous()
    # Image n, channel c, row y, column x is byte c * 1024 + y * 32 + x of row n.
    n, c, y, x = 7, 2, 5, 30
    assert splits.train.images[n, c, y, x] == train_rows[n, c * 1024 + y * 32 + x]
    assert torch.equal(splits.train.images.reshape(10, -1), torch.from_numpy(train_rows))
    assert splits.train.labels.tolist() == train_labels
    assert torch.equal(splits.test.images.reshape(3, -1), torch.from_numpy(test_rows))
    assert splits.test.labels.tolist() == test_labels


def test_cifar100_pickle_files(tmp_path, skip_md5):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train_rows = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    test_rows = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    _pickle(
        folder / "train",
        {"data": train_rows, "fine_labels": [0, 99, 5, 7], "coarse_labels": [0, 1, 2, 3]},
    )
    _pickle(folder / "test", {"data": test_rows, "fine_labels": [42, 3], "coarse_labels": [1, 1]})
    names = [f"class{k}" for k in range(100)]
    _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": ["x"] * 20})
    splits = load("cifar100", root=tmp_path)
    assert splits.num_classes == 100 and splits.classes[99] == "class99"
    assert splits.train.labels.tolist() == [0, 99, 5, 7]
    assert torch.equal(splits.test.images.reshape(2, -1), torch.from_numpy(test_rows))


def test_unreadable_cifar_batch_is_a_data_error(tmp_path, skip_md5):
    fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="unreadable.*--download"):
        load("cifar10", root=tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "stl10"])
def test_missing_torchvision_data_names_root_and_flag(tmp_path, name):
    with pytest.raises(DataError) as info:
        load(name, root=tmp_path)
    assert str(tmp_path) in str(info.value) and "--download" in str(info.value)


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="downloading cifar10 into .* failed.*unreachable"):
        load("cifar10", root=tmp_path, download=True)


# --------------------------------------------------------------------------- STL-10


def test_stl10_binary_files_are_column_major_and_resized(tmp_path, skip_md5):
    """stl10_binary/*_X.bin hold 96x96x3 images, each channel stored column by column."""
    from torchvision.transforms.v2.functional import resize

    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    # Image k: red varies along x (columns) only, green along y (rows) only, blue constant.
    ramp = np.linspace(0, 255, 96).round().astype(np.uint8)
    images = np.zeros((3, 3, 96, 96), dtype=np.uint8)  # (N, C, row y, column x)
    images[:, 0] = ramp[None, None, :]
    images[:, 1] = ramp[None, :, None]
    images[:, 2] = np.array([10, 20, 30], dtype=np.uint8)[:, None, None]
    column_major = images.transpose(0, 1, 3, 2)  # per channel: x outer, y inner
    (folder / "train_X.bin").write_bytes(column_major[:2].tobytes())
    (folder / "train_y.bin").write_bytes(bytes([1, 10]))  # labels on disk are 1-based
    (folder / "test_X.bin").write_bytes(column_major[2:].tobytes())
    (folder / "test_y.bin").write_bytes(bytes([4]))
    (folder / "unlabeled_X.bin").write_bytes(b"")  # torchvision checks it exists; never read here
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")

    splits = load("stl10", root=tmp_path)
    assert splits.classes == names
    assert splits.train.labels.tolist() == [0, 9] and splits.test.labels.tolist() == [3]
    assert splits.train.images.shape == (2, 3, 64, 64) and splits.image_size == 64
    red, green, blue = splits.train.images[0].int()
    assert torch.all(red[0] == red[-1]) and red[0, -1] > red[0, 0] + 200  # varies along x
    assert torch.all(green[:, 0] == green[:, -1]) and green[-1, 0] > green[0, 0] + 200
    assert torch.all(blue == 10)
    expected = resize(torch.from_numpy(images[2]), [64, 64], antialias=True)
    assert torch.equal(splits.test.images[0], expected)


# --------------------------------------------------------------------------- image folders


def _png(path: Path, array: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_imagefolder_pngs_are_squared_to_64(tmp_path):
    red, blue = np.array([255, 0, 0], np.uint8), np.array([0, 0, 255], np.uint8)
    halves = np.zeros((64, 128, 3), np.uint8)  # 128 wide, 64 high: left red, right blue
    halves[:, :64], halves[:, 64:] = red, blue
    _png(tmp_path / "train" / "cat" / "a.png", halves)
    _png(tmp_path / "train" / "cat" / "b.png", np.full((100, 100, 3), 77, np.uint8))
    _png(tmp_path / "train" / "dog" / "c.png", np.full((32, 32), 200, np.uint8), mode="L")
    _png(tmp_path / "test" / "cat" / "d.png", np.full((64, 64, 3), 5, np.uint8))
    _png(tmp_path / "test" / "dog" / "e.png", np.full((70, 90, 3), 9, np.uint8))

    splits = load(f"imagefolder:{tmp_path}")
    assert splits.classes == ["cat", "dog"] and splits.channels == 3
    assert splits.train.images.shape == (3, 3, 64, 64)
    assert splits.test.images.shape == (2, 3, 64, 64)
    assert splits.train.labels.tolist() == [0, 0, 1] and splits.test.labels.tolist() == [0, 1]
    # The 128x64 image keeps its height and loses 32 columns on each side.
    first = splits.train.images[0]
    assert torch.equal(first[:, :, :32], torch.from_numpy(red)[:, None, None].expand(3, 64, 32))
    assert torch.equal(first[:, :, 32:], torch.from_numpy(blue)[:, None, None].expand(3, 64, 32))
    assert torch.all(splits.train.images[1] == 77) and torch.all(splits.train.images[2] == 200)
    assert torch.all(splits.test.images[1] == 9)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="train.*test"):
        load(f"imagefolder:{tmp_path}")
    _png(tmp_path / "train" / "cat" / "a.png", np.zeros((8, 8, 3), np.uint8))
    _png(tmp_path / "test" / "dog" / "b.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="class folders differ"):
        load(f"imagefolder:{tmp_path}")


def test_fashion_mnist_download_lands_in_torchvision_layout(tmp_path, monkeypatch):
    """``--download`` uses torchvision; its files (root/FashionMNIST/raw, unpacked) are found."""
    import torchvision.datasets.mnist as mnist

    source = tmp_path / "mirror"
    arrays = fake_fashion(source, compress=False, seed=5)
    fetched = []

    def fake_fetch(url, download_root, filename=None, md5=None, **kwargs):
        stem = filename.removesuffix(".gz")
        fetched.append(stem)
        Path(download_root, stem).write_bytes((source / stem).read_bytes())

    monkeypatch.setattr(mnist, "download_and_extract_archive", fake_fetch)
    root = tmp_path / "data"
    splits = load("fashion-mnist", root=root, download=True)
    assert sorted(fetched) == sorted(arrays)
    assert (root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert torch.equal(splits.test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]))
    load("fashion-mnist", root=root, download=True)  # present now: nothing fetched again
    assert len(fetched) == len(arrays)
