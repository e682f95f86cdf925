"""KernelClustering, piece by piece, against KMeans and t-SNE + KMeans on the same inputs.

The ablation table of I-Con's Table 3, on raw pixels in [0, 1] (the estimator's PCA inside):
each row turns one switch of the recipe off (or one option on), everything else at the
defaults. Columns: NMI, ARI, Hungarian accuracy against the classes, wall time of ``fit``
(k-NN graph and PCA included), mean +- std over seeds. Peers on the same inputs: scikit-learn's
KMeans (``n_init=10``), openTSNE (FFT, PCA-50 input) followed by KMeans. Then the recursive
target (``alpha``) beside the static one, paired by seed; then, with ``--run RUN_DIR``, the
backbone features of a trained encoder's test split (``rkdo cluster RUN_DIR``'s input).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/clustering.py \
        --data digits fashion-10k --seeds 3 --alpha-seeds 5 --run /work/scratch/cluster/run
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

from rkdo.estimators import KernelClustering  # noqa: E402
from rkdo.evaluation.metrics import cluster_accuracy  # noqa: E402
from rkdo.evaluation.stats import paired_comparison  # noqa: E402

DATA = ("digits", "fashion-10k", "fashion-70k")

# one switch per row; the first is the full recipe (the estimator's defaults)
ABLATION: dict[str, dict] = {
    "full recipe (defaults)": {},
    "random start (no spectral init)": {"init": "random"},
    "no propagation (walk_length=1)": {"walk_length": 1},
    "no shared-neighbour weights": {"shared_neighbors": False},
    "linear assignment (no MLP)": {"hidden_layer_sizes": ()},
    "no PCA (raw pixels into the MLP)": {"n_components": None},
    "debiased p and q (a = b = 0.5)": {"debias_p": 0.5, "debias_q": 0.5},
    "EMA target (0.9)": {"ema": 0.9},
    "spectral start only (1 epoch)": {"max_iter": 1},
    "one restart (n_init=1)": {"n_init": 1},
}


def load(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw features in [0, 1] and labels (Fashion 10k: a fixed random subset)."""
    from rkdo.vision.data import load as load_dataset

    splits = load_dataset("digits" if name == "digits" else "fashion-mnist")
    images = torch.cat([splits.train.images, splits.test.images]).flatten(1).numpy()
    labels = torch.cat([torch.as_tensor(splits.train.labels),
                        torch.as_tensor(splits.test.labels)]).numpy()
    if name == "fashion-10k":
        chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:10_000])
        images, labels = images[chosen], labels[chosen]
    scale = float(images.max())
    return images.astype(np.float32) / scale, labels


def _tsne_kmeans(x: np.ndarray, seed: int, k: int) -> np.ndarray:
    from openTSNE import TSNE

    reduced = PCA(50, random_state=seed).fit_transform(x) if x.shape[1] > 50 else x
    embedding = np.asarray(TSNE(n_jobs=1, random_state=seed).fit(reduced))
    return KMeans(k, n_init=10, random_state=seed).fit_predict(embedding)


def peers(k: int) -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    return {
        "KMeans (n_init=10)": lambda x, s: KMeans(k, n_init=10, random_state=s).fit_predict(x),
        "t-SNE (openTSNE) + KMeans": lambda x, s: _tsne_kmeans(x, s, k),
    }


def measure(method: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, labels: np.ndarray,
            seed: int) -> dict[str, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = method(x, seed)
    seconds = time.perf_counter() - start
    return {"nmi": normalized_mutual_info_score(labels, predicted),
            "ari": adjusted_rand_score(labels, predicted),
            "acc": cluster_accuracy(labels, predicted), "seconds": seconds}


def ours(params: dict, k: int) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda x, s: KernelClustering(n_clusters=k, random_state=s, **params).fit_predict(x)


def _cell(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def table(rows: dict[str, list[dict[str, float]]], title: str) -> str:
    lines = [f"### {title}", "", "| method | NMI | ARI | accuracy | wall s |",
             "|---|---|---|---|---|"]
    for name, runs in rows.items():
        cells = [_cell([r[key] for r in runs]) for key in ("nmi", "ari", "acc")]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {_cell([r['seconds'] for r in runs], 1)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA, default=["digits"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", nargs="*", default=None,
                        help="ablation rows to run (default: all; 'none' for none)")
    parser.add_argument("--peers", nargs="*", default=None,
                        help="peers to run (default: all; none with an empty list)")
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--alpha-seeds", type=int, default=0,
                        help="seeds of the paired static vs recursive comparison (0: skip)")
    parser.add_argument("--run", default=None, help="a trained run directory to cluster")
    parser.add_argument("--json", default=None, help="also write every measurement here")
    args = parser.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # warm-up: first-call costs (imports, thread pools) are nobody's wall time
    KernelClustering(n_clusters=2, max_iter=2, n_init=1).fit(np.random.rand(60, 4))
    report: dict[str, dict] = {}
    rows = ABLATION if args.rows is None else {
        name: params for name, params in ABLATION.items() if name in args.rows}
    for name in args.data:
        x, labels = load(name)
        k = len(np.unique(labels))
        methods = {row: ours(params, k) for row, params in rows.items()}
        methods.update({peer: method for peer, method in peers(k).items()
                        if args.peers is None or peer in args.peers})
        results: dict[str, list[dict[str, float]]] = {}
        for row, method in methods.items():
            results[row] = [measure(method, x, labels, seed) for seed in range(args.seeds)]
            print(f"{name} | {row}: " + ", ".join(
                f"{key} {_cell([r[key] for r in results[row]])}" for key in
                ("nmi", "ari", "acc", "seconds")), flush=True)
        print(table(results, f"{name}: {len(x)} points, {args.seeds} seeds"), flush=True)
        report[name] = {"ablation": results}
        if args.alpha_seeds:
            static = [measure(ours({}, k), x, labels, s) for s in range(args.alpha_seeds)]
            recursive = [measure(ours({"alpha": args.alpha}, k), x, labels, s)
                         for s in range(args.alpha_seeds)]
            test = paired_comparison([r["nmi"] for r in recursive], [r["nmi"] for r in static])
            print(table({"static (alpha = 0)": static,
                         f"recursive (alpha = {args.alpha})": recursive},
                        f"{name}: recursive target, {args.alpha_seeds} seeds paired"))
            print(f"NMI recursive - static: {test.mean_diff:+.4f} ± {test.std_diff:.4f}, "
                  f"paired t p = {test.t_pvalue if test.t_pvalue is not None else test.t_note}",
                  flush=True)
            report[name]["alpha"] = {"static": static, "recursive": recursive}
    if args.run:
        from rkdo.cli.estimators import load_features

        x, labels = load_features(args.run)
        k = len(np.unique(labels))
        results = {"KernelClustering (defaults)": [measure(ours({}, k), x, labels, s)
                                                   for s in range(args.seeds)],
                   "KMeans (n_init=10)": [measure(peers(k)["KMeans (n_init=10)"], x, labels, s)
                                          for s in range(args.seeds)]}
        print(table(results, f"encoder features of {args.run}: {x.shape}"), flush=True)
        report["encoder"] = results
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
