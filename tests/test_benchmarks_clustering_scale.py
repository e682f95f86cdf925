"""``benchmarks/clustering_scale.py``: the deformed copies, and one end-to-end run that resumes.

The deformation is checked against scipy applied image by image (an independent path: one
``rotate`` and one ``shift`` call per image, not the script's grouped rotation and padded
window); the run fits every method on a few hundred points in child processes and is read back
from the store by a second run, nothing refitted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "clustering_scale.py"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _module():
    spec = importlib.util.spec_from_file_location("bench_clustering_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deform_matches_scipy_image_by_image() -> None:
    rng = np.random.default_rng(3)
    images = rng.random((12, 28, 28)).astype(np.float32)
    images[:, :3] = images[:, -3:] = images[:, :, :3] = images[:, :, -3:] = 0.0
    angles = rng.integers(-8, 9, 12)
    angles[:3] = 0
    shifts = rng.integers(-2, 3, (12, 2))
    shifts[0] = 0
    got = _module().deform(images, angles, shifts)
    for image, angle, shift, out in zip(images, angles, shifts, got, strict=True):
        turned = ndimage.rotate(image, float(angle), reshape=False, order=1, mode="constant")
        want = ndimage.shift(turned, shift.astype(float), order=0, mode="constant", cval=0.0)
        np.testing.assert_allclose(out, want, atol=1e-6)
    np.testing.assert_array_equal(got[0], images[0])  # no rotation, no shift: unchanged


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST IDX files not installed")
def test_copies_keep_their_source_label_and_stay_in_range() -> None:
    module = _module()
    x, labels, source = module.fashion_1m(module.N_ORIGINAL + 300, seed=1)
    originals, classes, _ = module.fashion_1m(module.N_ORIGINAL)
    assert x.shape == (module.N_ORIGINAL + 300, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:module.N_ORIGINAL], originals)
    np.testing.assert_array_equal(labels, classes[source])
    np.testing.assert_array_equal(source[module.N_ORIGINAL:], np.arange(300))
    assert 0.0 <= x.min() and x.max() <= 1.0
    # a copy is a small deformation of its own original, not of another image
    copies = x[module.N_ORIGINAL:]
    own = np.abs(copies - originals[:300]).mean(1)
    other = np.abs(copies - originals[300:600]).mean(1)
    assert (own < other).mean() > 0.9


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST IDX files not installed")
def test_every_method_runs_and_the_store_is_read_back(tmp_path: Path) -> None:
    store = tmp_path / "scale.jsonl"
    command = [sys.executable, str(SCRIPT), "--n", "400", "--store", str(store)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    cells = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(cells) == 3
    for cell in cells:
        assert 0.0 <= cell["nmi"] <= 1.0 and cell["n"] == 400
        assert cell["peak_rss"] >= cell["data_rss"] > 0
    ours = next(c for c in cells if "KernelClustering" in c["key"])
    assert {"k-NN search", "training epochs"} <= {s["stage"] for s in ours["stages"]}
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "fitting" not in again.stdout and again.stdout.count("read from the store") == 3
    assert len(store.read_text().splitlines()) == 3
    table = [line for line in again.stdout.splitlines() if line.startswith("| KMeans (n_init=1)")]
    assert len(table) == 1 and "400" in table[0]
