"""Neighbour embedding and clustering: rkdo's estimators against their peers, back to back.

Embedding rows (input: digits' 64 pixels; Fashion-MNIST PCA to 50 dimensions):

- wall time of ``fit_transform`` (k-NN search and affinities included),
- 2-D k-NN-10 accuracy, 5-fold stratified cross-validation on the embedding,
- trustworthiness@10 (scikit-learn's; only for n <= 10,000).

Clustering rows (input: raw pixels in [0, 1]): NMI, ARI and Hungarian accuracy against the
classes. Peers run when installed: scikit-learn's TSNE and KMeans, openTSNE, umap-learn,
contrastive-ne (``cne``), torchdr. Every method gets the same threads (``--threads``).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/estimators.py --data digits fashion-10k

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` here unless already set (shared cores, MISSION.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
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

DATA = ("digits", "fashion-10k", "fashion-70k")


def load(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw features in [0, 1] and labels."""
    from rkdo.vision.data import load as load_dataset

    splits = load_dataset("digits" if name == "digits" else "fashion-mnist")
    images = torch.cat([splits.train.images, splits.test.images]).flatten(1).numpy()
    labels = torch.cat([torch.as_tensor(splits.train.labels),
                        torch.as_tensor(splits.test.labels)]).numpy()
    if name == "fashion-10k":
        chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:10_000])
        images, labels = images[chosen], labels[chosen]
    return images.astype(np.float64) / 255.0, labels


def embedders(threads: int, seed: int, recursive: bool) -> dict[str, Callable]:
    methods: dict[str, Callable] = {
        "rkdo t-SNE": lambda x: NeighbourEmbedding(random_state=seed).fit_transform(x),
    }
    if recursive:
        methods["rkdo t-SNE, teacher 0.05 linear"] = lambda x: NeighbourEmbedding(
            alpha=0.05, alpha_schedule="linear", random_state=seed).fit_transform(x)
    if importlib.util.find_spec("openTSNE"):
        from openTSNE import TSNE as OpenTSNE

        methods["openTSNE"] = lambda x: np.asarray(
            OpenTSNE(n_jobs=threads, random_state=seed).fit(x))
    from sklearn.manifold import TSNE

    methods["sklearn TSNE"] = lambda x: TSNE(n_jobs=threads, random_state=seed).fit_transform(x)
    if importlib.util.find_spec("umap"):
        from umap import UMAP

        methods["UMAP"] = lambda x: UMAP(n_jobs=threads).fit_transform(x)
    if importlib.util.find_spec("cne"):
        import cne

        methods["contrastive-ne"] = lambda x: cne.CNE(seed=seed).fit_transform(x)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA, default=list(DATA[:2]))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out")
    parser.add_argument("--recursive", action="store_true", help="add the recursive variants")
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load: {os.getloadavg()}, threads {args.threads}, torch {torch.__version__}")
    print("| data | method | wall s | kNN-10 (5-fold) | trust@10 | NMI | ARI | Hungarian acc |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.data:
        raw, labels = load(name, args.seed)
        features = raw if raw.shape[1] <= 64 else PCA(50, random_state=args.seed).fit_transform(raw)
        for method, fit in embedders(args.threads, args.seed, args.recursive).items():
            if method in args.skip or (method == "sklearn TSNE" and len(raw) > 10_000):
                continue
            start = time.perf_counter()
            embedding = fit(features)
            wall = time.perf_counter() - start
            trust = (f"{trustworthiness(features, embedding, n_neighbors=10):.3f}"
                     if len(raw) <= 10_000 else "-")
            print(f"| {name} | {method} | {wall:.1f} | "
                  f"{knn_accuracy(embedding, labels, args.seed):.3f} | {trust} | | | |",
                  flush=True)
        if args.no_cluster:
            continue
        for method, fit in clusterers(args.seed, args.recursive).items():
            if method in args.skip:
                continue
            start = time.perf_counter()
            assigned = fit(raw)
            wall = time.perf_counter() - start
            print(f"| {name} | {method} | {wall:.1f} | | | "
                  f"{normalized_mutual_info_score(labels, assigned):.3f} | "
                  f"{adjusted_rand_score(labels, assigned):.3f} | "
                  f"{cluster_accuracy(labels, assigned):.3f} |", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
