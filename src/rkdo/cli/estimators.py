"""``rkdo embed`` and ``rkdo cluster``: the scikit-learn estimators from the command line.

    rkdo embed DATA --out emb.npy [--plot emb.png]     NeighbourEmbedding (t-SNE by default)
    rkdo cluster DATA --out labels.npy                 KernelClustering

``DATA`` is a dataset name (``digits``, ``fashion-mnist``: train and test splits together,
pixels in [0, 1]), a ``.npy`` or ``.csv`` file of one row per point, or a run directory (the
trained encoder's backbone features of its test split). Features wider than ``--pca``
dimensions are reduced by PCA first (embed only; 50 by default, 0 keeps them).
``add_parser(subparsers)`` registers both commands on the ``rkdo`` parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "load_features"]

_NAMES = ("digits", "fashion-mnist")


def _read_table(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    else:
        try:
            array = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError:
            array = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)  # a header row
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path} must hold a 2-D numeric array (one row per point), "
                         f"got shape {array.shape} of {array.dtype}")
    return array.astype(np.float64)


def _run_features(path: Path, device: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from rkdo.evaluation import extract_features
    from rkdo.training import load_run

    run = load_run(path, device=device)
    image_size = getattr(run.config, "image_size", None)
    options = {} if image_size is None else {"image_size": image_size}
    features = extract_features(run.model, run.data.test.images, **options)
    labels = torch.as_tensor(run.data.test.labels).numpy()
    return np.asarray(features.cpu().numpy(), dtype=np.float64), labels


def load_features(data: str, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """``(features (n, d), labels or None)`` for a ``DATA`` argument (module docstring)."""
    if data in _NAMES:
        import torch

        from rkdo.vision.data import load

        splits = load(data)
        images = torch.cat([splits.train.images, splits.test.images]).flatten(1)
        labels = torch.cat([torch.as_tensor(splits.train.labels),
                            torch.as_tensor(splits.test.labels)])
        return images.numpy().astype(np.float64) / 255.0, labels.numpy()
    path = Path(data)
    if path.is_dir():
        return _run_features(path, device)
    if path.suffix in (".npy", ".csv"):
        if not path.exists():
            raise ValueError(f"DATA file {path} does not exist")
        return _read_table(path), None
    raise ValueError(f"DATA must be one of {', '.join(_NAMES)}, a .npy or .csv file, or a run "
                     f"directory; got {data!r}")


def _subsample(x: np.ndarray, labels: np.ndarray | None, limit: int | None, seed: int):
    if limit is None or len(x) <= limit:
        return x, labels
    chosen = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
    return x[chosen], None if labels is None else labels[chosen]


def _save(path: str, array: np.ndarray) -> None:
    from rkdo._io import atomic_writer

    atomic_writer(path, lambda tmp: np.save(tmp, array), suffix=".npy")


def _cmd_embed(args: argparse.Namespace) -> int:
    from sklearn.decomposition import PCA

    from rkdo.estimators import NeighbourEmbedding

    x, labels = _subsample(*load_features(args.data, device=args.device), args.max_points,
                           args.seed)
    if args.pca and x.shape[1] > args.pca:
        x = PCA(args.pca, random_state=args.seed).fit_transform(x)
    model = NeighbourEmbedding(objective=args.objective, perplexity=args.perplexity,
                               method=args.method, max_iter=args.max_iter, alpha=args.alpha,
                               alpha_schedule=args.alpha_schedule, random_state=args.seed,
                               device=args.device, verbose=args.verbose)
    embedding = model.fit_transform(x)
    _save(args.out, embedding)
    print(f"wrote {args.out}: {embedding.shape[0]} points, KL {model.kl_divergence_:.4f} "
          f"({model.method_})")
    if args.plot:
        from rkdo.viz.plots import plot_embedding

        colours = np.zeros(len(x), dtype=int) if labels is None else labels
        title = f"{Path(args.data).name}: {args.objective}, {len(x)} points"
        print(f"wrote {plot_embedding(embedding, colours, args.plot, title=title)}")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from rkdo.estimators import KernelClustering

    x, labels = _subsample(*load_features(args.data, device=args.device), args.max_points,
                           args.seed)
    model = KernelClustering(n_clusters=args.n_clusters, affinity=args.affinity,
                             n_neighbors=args.n_neighbors, debias_p=args.debias_p,
                             debias_q=args.debias_q, alpha=args.alpha, random_state=args.seed,
                             device=args.device, verbose=args.verbose)
    assigned = model.fit_predict(x)
    _save(args.out, assigned)
    line = f"wrote {args.out}: {len(assigned)} points in {len(np.unique(assigned))} clusters"
    if labels is not None:
        line += (f"; NMI {normalized_mutual_info_score(labels, assigned):.4f}, "
                 f"ARI {adjusted_rand_score(labels, assigned):.4f}")
    print(line)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA",
                        help="digits, fashion-mnist, a .npy/.csv file or a run directory")
    parser.add_argument("--out", required=True, help="output .npy file")
    parser.add_argument("--max-points", type=int, default=None,
                        help="embed a random subset of this many points")
    parser.add_argument("--alpha", type=float, default=0.0,
                        help="recursive teacher / target weight in [0, 1) (0: static I-Con)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--verbose", action="store_true", help="show a progress bar")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``embed`` and ``cluster`` on the ``rkdo`` command's ``subparsers``."""
    from rkdo.estimators.clustering import AFFINITIES
    from rkdo.estimators.embedding import OBJECTIVES, SOLVERS
    from rkdo.schedules import ALPHA_SCHEDULES

    embed = subparsers.add_parser("embed", help="2-D neighbour embedding (t-SNE, SNE, InfoNCE)",
                                  description=__doc__.split("\n\n")[0])
    _common(embed)
    embed.add_argument("--plot", default=None, help="also draw the embedding into this PNG")
    embed.add_argument("--objective", choices=OBJECTIVES, default="tsne")
    embed.add_argument("--method", choices=SOLVERS, default="auto",
                       help="exact (all pairs) or fft (k-NN P, interpolated repulsion)")
    embed.add_argument("--perplexity", type=float, default=30.0)
    embed.add_argument("--max-iter", type=int, default=750)
    embed.add_argument("--alpha-schedule", choices=ALPHA_SCHEDULES, default="constant")
    embed.add_argument("--pca", type=int, default=50,
                       help="reduce wider features to this many PCA dimensions first (0: off)")
    embed.set_defaults(func=_cmd_embed)

    cluster = subparsers.add_parser("cluster", help="I-Con kernel clustering",
                                    description=__doc__.split("\n\n")[0])
    _common(cluster)
    cluster.add_argument("--n-clusters", type=int, default=10)
    cluster.add_argument("--affinity", choices=AFFINITIES, default="knn")
    cluster.add_argument("--n-neighbors", type=int, default=10)
    cluster.add_argument("--debias-p", type=float, default=0.0)
    cluster.add_argument("--debias-q", type=float, default=0.0)
    cluster.set_defaults(func=_cmd_cluster)
