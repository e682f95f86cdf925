"""``rkdo embed`` and ``rkdo cluster``: the scikit-learn estimators from the command line.

    rkdo embed DATA --out emb.npy [--plot emb.png]     NeighbourEmbedding (t-SNE by default)
    rkdo cluster DATA --out labels.npy                 KernelClustering

``DATA`` is a dataset name, a ``.npy`` or ``.csv`` file of one row per point, or a run
directory (:mod:`rkdo.cli.features` reads it and scales it to unit magnitude). Every option's
default is the estimator's own, read from where its signature reads it (``DEFAULTS`` of
:mod:`rkdo.estimators._embedding_defaults` and :mod:`rkdo.estimators._cluster_defaults`), never
a copy. Outputs are checked for
writability before any computing; an interrupted command writes nothing; the estimators' warnings
(a lowered perplexity or ``n_neighbors``) are printed as one line each.
``add_parser(subparsers)`` registers both commands on the ``rkdo`` parser.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the DATA reader load when a command runs: `rkdo --help` lists
    import numpy as np  # these commands without them


__all__ = ["add_parser", "HELP"]

#: Each command's one-line help (``rkdo --help`` lists them without building their parsers).
HELP = {"embed": "2-D neighbour embedding (t-SNE, SNE, InfoNCE)",
        "cluster": "I-Con kernel clustering"}

_EMBED = ("Embed the rows of DATA in 2-D with a neighbour embedding: t-SNE (default), SNE, "
          "InfoNCE or NEG, static or with the recursive teacher (--alpha). DATA is digits, "
          "fashion-mnist, a .npy or .csv file (one row per point) or a run directory (its "
          "encoder's features). Features wider than --pca dimensions are reduced by PCA "
          "first. Writes an (n, 2) .npy and, with --plot, a scatter plot.")
_CLUSTER = ("Cluster the rows of DATA with I-Con's kernel clustering: soft assignments fitted "
            "to a k-nearest-neighbour graph, optionally debiased or with a recursive sharpened "
            "target (--alpha). DATA is digits, fashion-mnist, a .npy or .csv file (one row per "
            "point) or a run directory. Writes the (n,) labels as .npy and, when DATA has "
            "labels, prints NMI and ARI.")


def _prepared(args: argparse.Namespace, command: str) -> tuple[np.ndarray, np.ndarray | None]:
    from rkdo.cli.features import prepared

    return prepared(args.data, command, device=args.device, max_points=args.max_points,
                    seed=args.seed)


def _check_writable(path: str | None, flag: str) -> None:
    """Refuse an output that cannot be written, before any work."""
    if path is None:
        return
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: folder {folder} is not writable; choose a writable "
                         "location")
    if Path(path).is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")


def _save(path: str, array: np.ndarray) -> None:
    import numpy as np

    from rkdo._io import atomic_writer

    atomic_writer(path, lambda tmp: np.save(tmp, array), suffix=".npy")


def _interruptible(name: str):
    """Turn Ctrl-C into rkdo's interrupt with this command's own message."""

    def wrap(function):
        def run(args: argparse.Namespace) -> int:
            from rkdo.training import Interrupted  # when the command runs: --help needs no torch

            try:
                return function(args)
            except KeyboardInterrupt as error:
                if isinstance(error, Interrupted):
                    raise
                raise Interrupted(signal.SIGINT, f"interrupted; nothing was written (outputs "
                                  f"are written only when the {name} is complete); rerun the "
                                  "command to start again") from None
        return run
    return wrap


def _fit_reporting_warnings(command: str, fit):
    """Run ``fit()``; each warning becomes one ``rkdo COMMAND: warning: ...`` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit()
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"rkdo {command}: warning: {warning.message}", file=sys.stderr)
    return result


def _progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def _check_device(name: str) -> None:
    from rkdo.distributed import resolve_device

    resolve_device(name)


def embed_title(data: str, n: int, objective: str, alpha: float = 0.0) -> str:
    """The title of ``rkdo embed --plot``'s map, in display names: "Fashion-MNIST (70,000
    images), rkdo t-SNE"; a file or run directory by its name, points rather than images."""
    from rkdo.estimators._embedding_defaults import OBJECTIVE_NAMES
    from rkdo.vision.catalogue import DISPLAY_NAMES

    what = f"{n:,} points"
    if data in DISPLAY_NAMES:
        name, what = DISPLAY_NAMES[data], f"{n:,} images"
    elif (Path(data) / "config.json").is_file():  # a run directory: its encoder's features
        dataset = json.loads((Path(data) / "config.json").read_text()).get("dataset", "")
        run = Path(data).resolve().name
        name = f"{DISPLAY_NAMES.get(dataset, dataset)} test features of run {run}"
    else:
        name = Path(data).name
    recursive = f", recursive (alpha {alpha:g})" if alpha else ""
    return f"{name} ({what}), rkdo {OBJECTIVE_NAMES.get(objective, objective)}{recursive}"


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np
    from sklearn.decomposition import PCA

    from rkdo.cli.features import class_names
    from rkdo.estimators import NeighbourEmbedding

    _check_device(args.device)
    _check_writable(args.out, "--out")
    _check_writable(args.plot, "--plot")
    x, labels = _prepared(args, "embed")
    if args.pca and x.shape[1] > args.pca and len(x) > args.pca:
        x = PCA(args.pca, random_state=args.seed).fit_transform(x)
    model = NeighbourEmbedding(objective=args.objective, perplexity=args.perplexity,
                               method=args.method, max_iter=args.max_iter, alpha=args.alpha,
                               alpha_schedule=args.alpha_schedule, random_state=args.seed,
                               device=args.device, verbose=_progress(args))
    embedding = _fit_reporting_warnings("embed", lambda: model.fit_transform(x))
    _save(args.out, embedding)
    print(f"wrote {args.out}: {embedding.shape[0]} points, KL {model.kl_divergence_:.4f} "
          f"({model.method_})")
    if args.plot:
        from rkdo.viz.maps import plot_embedding

        colours = np.zeros(len(x), dtype=int) if labels is None else labels
        title = embed_title(args.data, len(x), args.objective, args.alpha)
        names = None if labels is None else class_names(args.data)
        written = plot_embedding(embedding, colours, args.plot, title=title, class_names=names)
        print(f"wrote {written}")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    import numpy as np
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from rkdo.estimators import KernelClustering

    _check_device(args.device)
    _check_writable(args.out, "--out")
    x, labels = _prepared(args, "cluster")
    if args.n_clusters > len(x):
        raise ValueError(f"--n-clusters {args.n_clusters} exceeds the {len(x)} points")
    model = KernelClustering(n_clusters=args.n_clusters, affinity=args.affinity,
                             n_neighbors=args.n_neighbors,
                             debias_p=args.debias_p, debias_q=args.debias_q, alpha=args.alpha,
                             random_state=args.seed, device=args.device,
                             verbose=_progress(args))
    assigned = _fit_reporting_warnings("cluster", lambda: model.fit_predict(x))
    _save(args.out, assigned)
    line = f"wrote {args.out}: {len(assigned)} points in {len(np.unique(assigned))} clusters"
    if labels is not None:
        line += (f"; NMI {normalized_mutual_info_score(labels, assigned):.4f}, "
                 f"ARI {adjusted_rand_score(labels, assigned):.4f}")
    print(line)
    return 0


# -- argument types: each refuses what the help text rules out --------------------------------

def _integer(low: int, *, auto: bool = False):
    def parse(text: str) -> int | str:
        if auto and text == "auto":
            return text
        try:
            value = int(text)
        except ValueError:
            what = "an integer or 'auto'" if auto else "an integer"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value
    return parse


def _real(low: float, high: float | None = None, *, low_open: bool = False,
          high_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            interval = f"{left}{low:g}, {'inf' if high is None else f'{high:g}'}{right}"
            raise argparse.ArgumentTypeError(f"must lie in {interval}, got {text}")
        return value
    return parse


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless the help already says it or it is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required:
            return text
        return super()._get_help_string(action) or text


def _common(parser: argparse.ArgumentParser, defaults: dict, what: str) -> None:
    from rkdo.estimators._embedding_defaults import MIN_SAMPLES

    parser.add_argument("data", metavar="DATA",
                        help="digits, fashion-mnist, a .npy/.csv file or a run directory")
    parser.add_argument("--out", required=True,
                        help=f"output .npy file of the {what} (required)")
    parser.add_argument("--max-points", type=_integer(MIN_SAMPLES), default=None,
                        help="use a random subset of this many points (default: all)")
    parser.add_argument("--alpha", type=_real(0.0, 1.0, high_open=True),
                        default=defaults["alpha"],
                        help="recursive teacher / target weight in [0, 1); 0 is static I-Con")
    parser.add_argument("--seed", type=_integer(0), default=0,
                        help="random seed of the estimator and of --max-points")
    parser.add_argument("--device", default=defaults["device"],
                        help="torch device: cpu, cuda or cuda:N")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: on when stderr is a terminal)")


def add_parser(subparsers: argparse._SubParsersAction,
               commands: Sequence[str] | None = None) -> None:
    """Register ``embed`` and ``cluster`` (or only the ``commands`` named) on the ``rkdo``
    command's ``subparsers``."""
    adders = {"embed": _add_embed, "cluster": _add_cluster}
    for name in HELP if commands is None else commands:
        adders[name](subparsers)


def _add_embed(subparsers: argparse._SubParsersAction) -> None:
    from rkdo.estimators._embedding_defaults import DEFAULTS as embedding
    from rkdo.estimators._embedding_defaults import OBJECTIVES, SOLVERS
    from rkdo.schedules import ALPHA_SCHEDULES

    embed = subparsers.add_parser("embed", help=HELP["embed"],
                                  description=_EMBED, formatter_class=_Formatter)
    _common(embed, embedding, "embedding")
    embed.add_argument("--plot", default=None,
                       help="also draw the embedding into this PNG (default: no plot)")
    embed.add_argument("--objective", choices=OBJECTIVES, default=embedding["objective"],
                       help="what the embedding minimises")
    embed.add_argument("--method", choices=SOLVERS, default=embedding["method"],
                       help="solver: exact (all pairs), fft (k-NN P, interpolated "
                            "repulsion), sampled (negative sampling); auto picks by size")
    embed.add_argument("--perplexity", type=_real(0.0, low_open=True),
                       default=embedding["perplexity"],
                       help="effective number of neighbours (lowered, with a warning, when "
                            "there are too few points)")
    embed.add_argument("--max-iter", type=_integer(1), default=embedding["max_iter"],
                       help="optimisation steps")
    embed.add_argument("--alpha-schedule", choices=ALPHA_SCHEDULES,
                       default=embedding["alpha_schedule"], help="schedule of --alpha")
    embed.add_argument("--pca", type=_integer(0), default=50,
                       help="reduce wider features to this many PCA dimensions first (0: off)")
    embed.set_defaults(func=_interruptible("embedding")(_cmd_embed))


def _add_cluster(subparsers: argparse._SubParsersAction) -> None:
    from rkdo.estimators._cluster_defaults import AFFINITIES
    from rkdo.estimators._cluster_defaults import DEFAULTS as clustering

    cluster = subparsers.add_parser("cluster", help=HELP["cluster"],
                                    description=_CLUSTER, formatter_class=_Formatter)
    _common(cluster, clustering, "cluster labels")
    cluster.add_argument("--n-clusters", type=_integer(1), default=clustering["n_clusters"],
                         help="number of clusters")
    cluster.add_argument("--affinity", choices=AFFINITIES, default=clustering["affinity"],
                         help="neighbour graph: knn (uniform) or gaussian (perplexity)")
    cluster.add_argument("--n-neighbors", type=_integer(1, auto=True),
                         default=clustering["n_neighbors"],
                         help="neighbours per point, or auto: ceil(log2 n) (at most n - 1; "
                              "larger values are lowered with a warning)")
    cluster.add_argument("--debias-p", type=_real(0.0, 1.0, high_open=True),
                         default=clustering["debias_p"],
                         help="uniform leak of the neighbour graph, in [0, 1)")
    cluster.add_argument("--debias-q", type=_real(0.0, 1.0, high_open=True),
                         default=clustering["debias_q"],
                         help="uniform leak of the clustering kernel, in [0, 1)")
    cluster.set_defaults(func=_interruptible("clustering")(_cmd_cluster))
