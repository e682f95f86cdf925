"""Image folder layouts people have, on real PNG files written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rkdo.vision import data, imagefolder
from rkdo.vision.data import DataError, load


def _png(path: Path, value: int, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8), mode="RGB").save(path)


def _class_folders(root: Path, counts: dict[str, int]) -> None:
    """``root/<class>/<k>.png``; image k of class c has the gray value 10 * c_index + k."""
    for c, (name, count) in enumerate(counts.items()):
        for k in range(count):
            _png(root / name / f"{k:03d}.png", 10 * c + k)


def test_the_facade_still_exports_the_public_names():
    for name in ("load", "DATASETS", "DataError", "DatasetSplits", "ImageData",
                 "default_image_size", "read_idx", "resize_uint8", "default_root"):
        assert hasattr(data, name), name


def test_one_folder_of_class_folders_gets_a_stratified_seeded_holdout(tmp_path):
    counts = {"ant": 10, "bee": 5, "cat": 1}
    _class_folders(tmp_path, counts)
    splits = load(f"imagefolder:{tmp_path}")
    assert splits.classes == ["ant", "bee", "cat"]
    test_counts = torch.bincount(splits.test.labels, minlength=3).tolist()
    assert test_counts == [2, 1, 0]  # round(0.2 * n), at least 1 from a class of >= 2, none of 1
    assert len(splits.train) + len(splits.test) == 16
    # every image once: the gray values (unique per image) of both splits are the whole set
    values = torch.cat([splits.train.images[:, 0, 0, 0], splits.test.images[:, 0, 0, 0]])
    expected = [10 * c + k for c, n in enumerate(counts.values()) for k in range(n)]
    assert sorted(values.tolist()) == sorted(expected)
    again = load(f"imagefolder:{tmp_path}")
    assert torch.equal(again.test.images, splits.test.images)  # the seed is fixed

    wider = load(f"imagefolder:{tmp_path}", holdout_fraction=0.5)
    assert torch.bincount(wider.test.labels, minlength=3).tolist() == [5, 3, 0]  # 2.5 rounds up


def test_stratified_holdout_is_exact_on_many_classes():
    labels = np.repeat(np.arange(4), [20, 7, 2, 50])
    train, test = imagefolder.stratified_holdout(labels, 0.3, seed=1)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert np.bincount(labels[test], minlength=4).tolist() == [6, 2, 1, 15]
    other_train, other_test = imagefolder.stratified_holdout(labels, 0.3, seed=2)
    assert not np.array_equal(test, other_test)


def test_val_is_accepted_as_the_held_out_split(tmp_path):
    _class_folders(tmp_path / "train", {"a": 3, "b": 2})
    _class_folders(tmp_path / "val", {"a": 1, "b": 1})
    splits = load(f"imagefolder:{tmp_path}")
    assert (len(splits.train), len(splits.test)) == (5, 2)
    assert splits.test.labels.tolist() == [0, 1]
    # test/ wins over val/ when both are there
    _class_folders(tmp_path / "test", {"a": 2, "b": 2})
    assert len(load(f"imagefolder:{tmp_path}").test) == 4


def test_holdout_fraction_is_refused_where_a_test_split_exists(tmp_path):
    _class_folders(tmp_path / "train", {"a": 2})
    _class_folders(tmp_path / "test", {"a": 1})
    with pytest.raises(ValueError, match="already has train/ and test/"):
        load(f"imagefolder:{tmp_path}", holdout_fraction=0.3)
    with pytest.raises(ValueError, match="digits has a fixed test split"):
        load("digits", holdout_fraction=0.3)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, float("nan")])
def test_holdout_fraction_must_lie_in_the_open_unit_interval(tmp_path, fraction):
    _class_folders(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(ValueError, match=r"holdout_fraction must lie in \(0, 1\)"):
        load(f"imagefolder:{tmp_path}", holdout_fraction=fraction)


def test_layout_errors_say_what_is_missing(tmp_path):
    _class_folders(tmp_path / "train", {"a": 2})
    with pytest.raises(DataError, match="no held-out split beside it.*test.*val"):
        load(f"imagefolder:{tmp_path}")
    other = tmp_path / "other"
    _class_folders(other / "val", {"a": 2})
    with pytest.raises(DataError, match=r"val is there but .*train is missing"):
        load(f"imagefolder:{other}")
    with pytest.raises(DataError, match="is not a folder"):
        load(f"imagefolder:{tmp_path / 'nowhere'}")
    single = tmp_path / "single"
    _class_folders(single, {"a": 1, "b": 1})
    with pytest.raises(DataError, match="too few to hold any out"):
        load(f"imagefolder:{single}")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("layout", ["split", "flat"])
def test_a_corrupt_image_is_a_data_error_naming_the_file(tmp_path, damage, layout):
    root = tmp_path / "train" if layout == "split" else tmp_path
    _class_folders(root, {"a": 3, "b": 3})
    if layout == "split":
        _class_folders(tmp_path / "test", {"a": 1, "b": 1})
    bad = root / "b" / "bad.png"
    _png(bad, 7, size=(64, 64))
    payload = bad.read_bytes()
    bad.write_bytes({"truncated": payload[: len(payload) // 2], "garbage": b"not a png" * 20,
                     "empty": b""}[damage])
    with pytest.raises(DataError, match=f"cannot decode {bad}.*delete or replace"):
        load(f"imagefolder:{tmp_path}")


@pytest.mark.parametrize("layout", ["classes", "split"])
def test_symlink_loops_and_duplicate_links_read_each_image_once(tmp_path, layout):
    """The issue's folder: 12 PNG files and a link back to the root loaded as 252 images,
    duplicated across train and test. Each real image must be read once."""
    root = tmp_path / "data"
    if layout == "classes":
        _class_folders(root, {"ant": 6, "bee": 6})
        (root / "ant" / "loop").symlink_to(root)  # a loop through every class
        (root / "bee" / "again.png").symlink_to(root / "bee" / "000.png")
    else:
        _class_folders(root / "train", {"ant": 4, "bee": 4})
        for c, name in enumerate(("ant", "bee")):
            for k in range(2):
                _png(root / "test" / name / f"{k:03d}.png", 100 + 10 * c + k)
        (root / "train" / "ant" / "loop").symlink_to(root)
        (root / "test" / "bee" / "copy.png").symlink_to(root / "train" / "bee" / "000.png")
    splits = load(f"imagefolder:{root}")
    assert len(splits.train) + len(splits.test) == 12
    values = [int(image[0, 0, 0]) for image in torch.cat([splits.train.images,
                                                          splits.test.images])]
    assert len(set(values)) == 12  # every image once, none in both splits
