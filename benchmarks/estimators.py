"""Neighbour embedding and clustering: rkdo's estimators against their peers, back to back.

Embedding rows (input: digits' 64 pixels; Fashion-MNIST PCA to 50 dimensions; ``gauss-1m``:
1,000,000 points of a 50-D mixture of 100 Gaussians, ``make_blobs(cluster_std=6)``). Each
method runs in its own process (so its peak memory is its own), one after the other, rkdo's
t-SNE and openTSNE adjacent so that both see the same machine load (printed on every row):

- wall time of ``fit_transform`` (k-NN search and affinities included),
- peak resident memory of the process (``ru_maxrss``: interpreter, data and method),
- 2-D k-NN-10 accuracy, 5-fold stratified cross-validation on the embedding,
- trustworthiness@10 (scikit-learn's; only for n <= 10,000).

A peer that cannot run a size (O(n^2) memory, or no sparse backend installed) is listed as such.
Clustering rows (input: raw pixels in [0, 1]): NMI, ARI and Hungarian accuracy against the
classes. Peers run when installed: scikit-learn's TSNE and KMeans, openTSNE, umap-learn,
contrastive-ne (``cne``, the Berens lab's package: PyPI's ``cne`` is an unrelated fuel-price
client), torchdr. Every method gets the same threads (``--threads``).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/estimators.py --data digits fashion-10k

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` here unless already set (shared cores, MISSION.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import trustworthiness  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from rkdo.estimators import KernelClustering, NeighbourEmbedding  # noqa: E402
from rkdo.evaluation.metrics import cluster_accuracy  # noqa: E402

DATA = ("digits", "fashion-10k", "fashion-70k", "gauss-1m")
# the largest n each peer embeds here in reasonable time: torchdr without faiss or keops is
# dense, O(n^2) per iteration for 1,000 iterations (about 0.8 GB and minutes per run at 10k)
LIMITS = {"sklearn TSNE": 10_000, "torchdr TSNE": 2_000, "openTSNE": 100_000,
          "rkdo t-SNE": 100_000, "UMAP": 100_000}


def load(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw features in [0, 1] (gauss-1m: the mixture's coordinates) and labels."""
    if name == "gauss-1m":
        from sklearn.datasets import make_blobs

        x, labels = make_blobs(n_samples=1_000_000, n_features=50, centers=100,
                               cluster_std=6.0, random_state=seed)
        return x.astype(np.float32), labels
    from rkdo.vision.data import load as load_dataset

    splits = load_dataset("digits" if name == "digits" else "fashion-mnist")
    images = torch.cat([splits.train.images, splits.test.images]).flatten(1).numpy()
    labels = torch.cat([torch.as_tensor(splits.train.labels),
                        torch.as_tensor(splits.test.labels)]).numpy()
    if name == "fashion-10k":
        chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:10_000])
        images, labels = images[chosen], labels[chosen]
    return images.astype(np.float64) / 255.0, labels


def _open_tsne(x: np.ndarray, threads: int, seed: int) -> np.ndarray:
    from openTSNE import TSNE as OpenTSNE

    return np.asarray(OpenTSNE(n_jobs=threads, random_state=seed).fit(x))


def _sklearn_tsne(x: np.ndarray, threads: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_jobs=threads, random_state=seed).fit_transform(x)


def _umap(x: np.ndarray, threads: int, seed: int) -> np.ndarray:
    from umap import UMAP

    return UMAP(n_jobs=threads).fit_transform(x)


def _cne(x: np.ndarray, threads: int, seed: int) -> np.ndarray:
    import cne

    return cne.CNE(seed=seed).fit_transform(x)


def _torchdr(x: np.ndarray, threads: int, seed: int) -> np.ndarray:
    import torchdr

    return np.asarray(torchdr.TSNE(random_state=seed, device="cpu", max_iter=1000)
                      .fit_transform(x.astype(np.float32)))


def embedders(threads: int, seed: int, recursive: bool) -> dict[str, Callable]:
    """Name -> ``fit_transform``; a peer is imported only when its method runs."""
    methods: dict[str, Callable] = {
        "rkdo t-SNE": lambda x: NeighbourEmbedding(random_state=seed).fit_transform(x),
    }
    peers = {"openTSNE": ("openTSNE", _open_tsne), "sklearn TSNE": ("sklearn", _sklearn_tsne),
             "UMAP": ("umap", _umap), "torchdr TSNE": ("torchdr", _torchdr)}
    if importlib.util.find_spec("openTSNE"):
        methods["openTSNE"] = lambda x: _open_tsne(x, threads, seed)
    methods["rkdo InfoNCE (sampled)"] = lambda x: NeighbourEmbedding(
        objective="infonce", random_state=seed).fit_transform(x)
    if recursive:
        methods["rkdo t-SNE, teacher 0.05 linear"] = lambda x: NeighbourEmbedding(
            alpha=0.05, alpha_schedule="linear", random_state=seed).fit_transform(x)
    for name, (module, fit) in peers.items():
        if name != "openTSNE" and importlib.util.find_spec(module):
            methods[name] = lambda x, fit=fit: fit(x, threads, seed)
    # PyPI's ``cne`` is an unrelated package; the Berens lab's has ``CNE``
    if importlib.util.find_spec("cne") and hasattr(importlib.import_module("cne"), "CNE"):
        methods["contrastive-ne"] = lambda x: _cne(x, threads, seed)
    return methods


def clusterers(seed: int, recursive: bool) -> dict[str, Callable]:
    from sklearn.cluster import KMeans

    methods: dict[str, Callable] = {
        "rkdo KernelClustering": lambda x: KernelClustering(random_state=seed).fit_predict(x),
        "KMeans": lambda x: KMeans(10, n_init=10, random_state=seed).fit_predict(x),
    }
    if recursive:
        methods["rkdo KernelClustering, alpha 0.3"] = lambda x: KernelClustering(
            alpha=0.3, random_state=seed).fit_predict(x)
    return methods


def knn_accuracy(embedding: np.ndarray, labels: np.ndarray, seed: int) -> float:
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(10), embedding, labels, cv=folds).mean())


def features(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(raw, embedding input, labels)``: PCA to 50 above 64 dimensions (Fashion-MNIST)."""
    raw, labels = load(name, seed)
    wide = raw.shape[1] > 64 and name != "gauss-1m"
    return raw, PCA(50, random_state=seed).fit_transform(raw) if wide else raw, labels


def child(method: str, path: str, threads: int, seed: int, recursive: bool) -> None:
    """Run one embedding method on the saved input in this process; print one JSON line."""
    torch.set_num_threads(threads)
    stored = np.load(path)
    x, labels = stored["x"], stored["labels"]
    fit = embedders(threads, seed, recursive)[method]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    embedding = np.asarray(fit(x), dtype=np.float64)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    trust = trustworthiness(x, embedding, n_neighbors=10) if len(x) <= 10_000 else None
    print(json.dumps({"wall": wall, "peak": peak, "knn": knn_accuracy(embedding, labels, seed),
                      "trust": trust, "load": [load_before, os.getloadavg()[0]]}))


def run_embeddings(name: str, args: argparse.Namespace) -> None:
    _, x, labels = features(name, args.seed)
    methods = [m for m in embedders(args.threads, args.seed, args.recursive)
               if m not in args.skip]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "input.npz")
        np.savez(path, x=x, labels=labels)
        for method in methods:
            if len(x) > LIMITS.get(method, len(x)):
                print(f"| {name} | {method} | not run: n = {len(x):,} > {LIMITS[method]:,} "
                      "(dense O(n^2) or no sparse backend) | | | | |", flush=True)
                continue
            command = [sys.executable, __file__, "--child", method, path, "--threads",
                       str(args.threads), "--seed", str(args.seed)]
            command += ["--recursive"] if args.recursive else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                reason = (done.stderr.strip().splitlines() or ["?"])[-1][:80]
                print(f"| {name} | {method} | failed: {reason} | | | | |", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            trust = "-" if row["trust"] is None else f"{row['trust']:.3f}"
            print(f"| {name} | {method} | {row['wall']:.1f} | {row['peak']:.2f} | "
                  f"{row['knn']:.4f} | {trust} | {row['load'][0]:.1f} / {row['load'][1]:.1f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA, default=list(DATA[:2]))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out")
    parser.add_argument("--recursive", action="store_true", help="add the recursive variants")
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.threads, args.seed, args.recursive)
        return
    torch.set_num_threads(args.threads)
    print(f"load: {os.getloadavg()}, threads {args.threads}, torch {torch.__version__}")
    print("| data | method | wall s | peak RSS GiB | kNN-10 (5-fold) | trust@10 | load 1-min "
          "before / after |")
    print("|---|---|---|---|---|---|---|")
    for name in args.data:
        run_embeddings(name, args)
    if not args.no_cluster:
        cluster(args)
    print(f"load after: {os.getloadavg()}")


def cluster(args: argparse.Namespace) -> None:
    print("\n| data | method | wall s | NMI | ARI | Hungarian acc |\n|---|---|---|---|---|---|")
    for name in args.data:
        if name == "gauss-1m":
            continue
        raw, labels = load(name, args.seed)
        for method, fit in clusterers(args.seed, args.recursive).items():
            if method in args.skip:
                continue
            start = time.perf_counter()
            assigned = fit(raw)
            wall = time.perf_counter() - start
            print(f"| {name} | {method} | {wall:.1f} | "
                  f"{normalized_mutual_info_score(labels, assigned):.3f} | "
                  f"{adjusted_rand_score(labels, assigned):.3f} | "
                  f"{cluster_accuracy(labels, assigned):.3f} |", flush=True)


if __name__ == "__main__":
    main()
