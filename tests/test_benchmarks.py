"""Every benchmark script still imports the library as it is laid out now (``--help`` exits 0).

The benchmarks are not run by the suite (they print tables that take minutes); this only keeps a
moved or renamed module from breaking them unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_benchmark_script_starts(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def fake_fashion(folder: Path, per_class: int = 30) -> None:
    """Fashion-MNIST's four IDX files (gzip, uint8, big-endian dimensions) holding 10 classes
    of ``per_class`` images each: a random binary template per class with 5% of its pixels
    flipped, shuffled, the first 250 in train; the test images follow them in the data set."""
    import gzip

    import numpy as np

    rng = np.random.default_rng(0)
    templates = rng.random((10, 28, 28)) < 0.3
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    images = (templates[labels] ^ (rng.random((len(labels), 28, 28)) < 0.05)) * 255
    folder.mkdir(parents=True)
    for split, part in (("train", slice(0, 250)), ("t10k", slice(250, None))):
        for kind, array in (("images-idx3", images[part]), ("labels-idx1", labels[part])):
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
                size.to_bytes(4, "big") for size in array.shape)
            with gzip.open(folder / f"{split}-{kind}-ubyte.gz", "wb") as handle:
                handle.write(header + array.astype(np.uint8).tobytes())


def test_gpu_throughput_smoke_writes_every_part(tmp_path: Path) -> None:
    """``--smoke`` runs every part of the GPU script on the CPU at toy sizes: a JSON with
    training cells of both methods, the PIL pipeline, every loss at both batches, the
    embedding and KernelClustering on 300 points of the ``--fashion-root`` files (10 separated
    classes: the NMI against the written labels is near 1 only if images and labels are read
    in the same order), and a markdown table with its headline."""
    out, root = tmp_path / "gpu.json", tmp_path / "fashion"
    fake_fashion(root)
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_throughput.py"), "--smoke",
                           "--out", str(out), "--embed-iter", "20", "--fashion-root", str(root)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    train = report["train"]
    assert {row["method"] for row in train} == {"icon", "rkdo"}
    assert all("images_per_s" in row for row in train), train
    assert {row["layout"] for row in train} == {"contiguous", "channels_last"}
    assert report["pil"]["rkdo"]["steps_per_s"] > 0
    names = {row["loss"] for row in report["losses"]}
    assert {"rkdo RKDO depth 3 streaming", "rkdo RKDO depth 3 fused",
            "plain RKDO depth 3 (notebooks)"} <= names
    assert all("ms" in row for row in report["losses"]), report["losses"]
    assert report["embedding"]["points"] == 300 and report["embedding"]["fit_s"] > 0
    assert report["embedding"]["data"] == "fashion-mnist train + test"
    [cell] = report["clustering"]
    assert cell["data"] == f"fashion-mnist ({root})" and cell["points"] == 300, cell
    assert cell["device"] == "cpu" and cell["peak_device_mib"] is None and cell["fit_s"] > 0
    assert cell["nmi"] > 0.9 and cell["ari"] > 0.8, cell
    assert 1 <= cell["n_iter"] <= 50 and cell["n_neighbors"] == 10
    stages = {stage["stage"] for stage in cell["stages"]}
    assert {"k-NN search", "spectral embedding", "training epochs"} <= stages, stages
    assert report["environment"]["parts"] == ["train", "pil", "losses", "embedding",
                                              "clustering"]
    table = out.with_suffix(".md").read_text()
    for heading in ("## Headline", "## Training steps", "PIL", "## Losses", "NeighbourEmbedding",
                    "## KernelClustering", f"| fashion-mnist ({root}) | 300 | cpu |"):
        assert heading in table


def test_gpu_throughput_names_the_flag_when_fashion_is_missing(tmp_path: Path) -> None:
    """Without Fashion-MNIST, ``--parts clustering`` stops the run before any part starts, with
    one message that names ``--fashion-root``; the other parts run without it, and the default
    run (no ``--parts``) records the clustering part as skipped with that message."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_throughput",
                                                  BENCHMARKS / "gpu_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu.json"
    with pytest.raises(SystemExit) as stop:
        module.main(["--parts", "clustering", "--fashion-root", str(tmp_path / "none"),
                     "--out", str(out)])
    assert "--fashion-root DIR" in str(stop.value) and str(tmp_path / "none") in str(stop.value)
    assert not out.exists()
    args = module.parse(["--parts", "pil", "--fashion-root", str(tmp_path / "none"),
                         "--out", str(out)])
    module._preload(args)  # nothing to load
    assert args.cluster_data is None
    # no --parts (every part, as the commands written before part 5 ask): clustering is skipped
    # with the same message, the run goes on
    args = module.parse(["--fashion-root", str(tmp_path / "none"), "--out", str(out)])
    module._preload(args)
    assert args.cluster_data is None and "--fashion-root DIR" in args.cluster_skipped
    args.parts = ["clustering"]  # run only the loop's handling of the skipped part
    report = module.run(args, module.torch.device("cpu"))
    assert report["clustering"] == {"skipped": args.cluster_skipped}


def test_loss_speed_memory_table(tmp_path: Path) -> None:
    """The memory table: one capped process per cell, peak MiB and ms for both rkdo paths."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "loss_speed.py"), "--memory-only",
                           "--memory-sizes", "64", "--memory-calls", "1", "--memory-cap-mib",
                           "256", "--only", "rkdo I-Con"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("rkdo I-Con (pair)", "rkdo I-Con streaming"):
        row = next(line for line in done.stdout.splitlines() if line.startswith(f"| {name} |"))
        assert "MiB" in row and "ms" in row, row


def test_clustering_store_resumes_without_recomputing(tmp_path: Path) -> None:
    """A finished cell of ``benchmarks/clustering.py --store`` is read back by the next run,
    not refitted; a cell with another key (another estimator source) is computed."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("bench_clustering", BENCHMARKS / "clustering.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls: list[int] = []

    def method(x: np.ndarray, seed: int) -> np.ndarray:
        calls.append(seed)
        return np.arange(len(x)) % 2

    x, labels = np.zeros((6, 2)), np.array([0, 1, 0, 1, 0, 1])
    path = tmp_path / "cells.jsonl"
    key = module.Store.key("toy", "row", 0, "v1")
    first = module.cached(module.Store(str(path)), key, method, x, labels, 0)
    again = module.cached(module.Store(str(path)), key, method, x, labels, 0)
    assert calls == [0] and again == first and first["nmi"] == 1.0
    module.cached(module.Store(str(path)), module.Store.key("toy", "row", 0, "v2"), method, x,
                  labels, 0)
    assert calls == [0, 0]


def test_clustering_held_out_sets_are_standardised_and_labelled() -> None:
    """The held-out tabular sets of ``benchmarks/clustering.py``: scikit-learn's data, each
    column at mean 0 and standard deviation 1 (their units differ), labels unchanged."""
    import importlib.util

    import numpy as np
    from sklearn.datasets import load_wine

    spec = importlib.util.spec_from_file_location("bench_clustering", BENCHMARKS / "clustering.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, labels = module.load("wine")
    raw, expected = load_wine(return_X_y=True)
    assert x.shape == raw.shape and np.array_equal(labels, expected)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-4)
    assert set(module.HELD_OUT) <= set(module.DATA)


def _bench_clustering():  # noqa: ANN202 (a module loaded from its path)
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_clustering", BENCHMARKS / "clustering.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clustering_key_ignores_docstrings_and_comments_not_code() -> None:
    """The estimator key's view of a module: a docstring, comment or layout edit keeps it; a
    changed constant or operator changes it."""
    fingerprint = _bench_clustering().code_fingerprint
    source = '"""Module."""\n\nK = 10\n\n\ndef f(x):\n    """Doc."""\n    return x * K\n'
    reworded = ('"""Another module docstring."""\n# a comment\nK = 10  # neighbours\n'
                'def f(x):\n    """Other words."""\n\n    return (x\n            * K)\n')
    assert fingerprint(reworded) == fingerprint(source)
    assert fingerprint(source.replace("K = 10", "K = 11")) != fingerprint(source)
    assert fingerprint(source.replace("x * K", "x + K")) != fingerprint(source)
    # a function whose body is only its docstring is still a function
    assert fingerprint('def g():\n    """Doc."""\n') == fingerprint("def g():\n    pass\n")


def test_clustering_key_covers_knn_and_follows_a_code_edit(tmp_path: Path) -> None:
    """The key covers every module that decides the labels (``_knn.py`` among them) on a copy
    of the package: a docstring edit of ``_knn.py`` keeps it, a code edit changes it."""
    import shutil

    import rkdo

    module = _bench_clustering()
    shutil.copytree(Path(rkdo.__file__).parent, tmp_path / "rkdo",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    names = set(module.estimator_modules(tmp_path))
    assert {"rkdo.estimators.clustering", "rkdo.estimators._cluster_graph",
            "rkdo.estimators._cluster_loss", "rkdo.estimators._cluster_train",
            "rkdo.estimators._cluster_defaults", "rkdo.estimators._knn",
            "rkdo.estimators._mlp", "rkdo.calibration"} <= names
    assert not names & set(module.LABEL_NEUTRAL)
    before = module.estimator_hash(tmp_path)
    knn = tmp_path / "rkdo" / "estimators" / "_knn.py"
    text = knn.read_text()
    first_line = text.index("\n")  # inside the module docstring
    knn.write_text(text[:first_line] + " (edited)" + text[first_line:] + "\n# a comment\n")
    assert module.estimator_hash(tmp_path) == before
    knn.write_text(text + "\nEXTRA = 1\n")
    assert module.estimator_hash(tmp_path) != before


def test_clustering_report_reads_cells_of_the_older_key() -> None:
    """``--report --estimator 8ed0cda2de23`` (a hash of the older, source-text key, cited by
    docs/results/clustering.md) still prints that estimator's stored rows, the rows today's
    defaults no longer generate after its own rows and before the peers."""
    store = BENCHMARKS.parent / "docs" / "results" / "clustering.jsonl"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "clustering.py"), "--report",
                           "--store", str(store), "--data", "iris", "--seeds", "3",
                           "--estimator", "8ed0cda2de23"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split(" | ")[0].lstrip("| ") for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]
    stored = {json.loads(line)["key"] for line in store.read_text().splitlines() if line.strip()}
    own = {json.loads(key)[1] for key in stored if json.loads(key)[0] == "iris"
           and json.loads(key)[3] == "8ed0cda2de23"}
    assert "full recipe (defaults)" in rows and rows.index("full recipe (defaults)") == 0
    assert {"previous defaults (n_neighbors=10, shared_neighbors=2)"} <= set(rows)
    first_peer = rows.index("KMeans (n_init=10)")
    assert set(rows[:first_peer]) == own - {"static (alpha = 0)", "recursive (alpha = 0.3)"}
    assert all(row not in own for row in rows[first_peer:])
