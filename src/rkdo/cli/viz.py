"""``rkdo viz``: the kaleidoscope animation, training curves and feature maps (parsing only).

    rkdo viz kaleidoscope --out k.gif [--split] [--simulate | --run DIR]
    rkdo viz curves DIR [DIR ...] --out curves.png
    rkdo viz embedding DIR --out embedding.png [--method pca|tsne]

``add_parser(subparsers)`` registers ``viz`` on the ``rkdo`` command (:mod:`rkdo.cli.main`
runs it). Each command parses its arguments and calls :mod:`rkdo.viz`; matplotlib is imported
only when a figure is drawn.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from rkdo._validation import check_positive

__all__ = ["add_parser", "HELP"]

#: The command's one-line help (``rkdo --help`` lists it without building its parser).
HELP = {"viz": "kaleidoscope animation, training curves, feature maps"}

_SIMULATED_FRAMES = 50
_DEFAULT_NODES = 12


def _cmd_kaleidoscope(args: argparse.Namespace) -> int:
    # the drawing modules (numpy, torch) load when a command runs, not when `rkdo` lists it
    from rkdo.fields import load_fields, save_fields
    from rkdo.viz.kaleidoscope import Kaleidoscope
    from rkdo.viz.simulate import simulate

    started = time.perf_counter()
    if args.run is not None:
        fields, frames = load_fields(args.run), args.frames
        source = f"recorded fields of {args.run}"
    else:
        frames = _SIMULATED_FRAMES if args.frames is None else args.frames
        fields = simulate(
            n_points=args.points or args.nodes or _DEFAULT_NODES,
            dim=args.dim, clusters=args.clusters, spread=args.spread, jitter=args.jitter,
            temperature=args.temperature, alpha=args.alpha, lr=args.lr, frames=frames,
            steps_per_frame=args.steps_per_frame, debias=args.debias, seed=args.seed,
        ).fields
        if args.save_fields is not None:
            save_fields(args.save_fields, fields)
        source = f"simulation (seed {args.seed})"
    rendering = Kaleidoscope(
        fields, nodes=args.nodes, split=args.split, theme=args.theme, dpi=args.dpi,
        frames=frames, cmap=args.cmap, title=args.title,
    ).save(args.out, fps=args.fps)
    print(f"wrote {rendering.path}: {rendering.frames} frames of {rendering.width}x"
          f"{rendering.height} px, {rendering.nodes} nodes, from the {source}, in "
          f"{time.perf_counter() - started:.1f} s")
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    from rkdo.viz.plots import plot_curves

    out = plot_curves(args.runs, args.out, metrics=args.metrics, names=args.names,
                      log_loss=args.log_loss, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def _cmd_embedding(args: argparse.Namespace) -> int:
    from rkdo.viz.maps import plot_run_embedding

    out = plot_run_embedding(
        args.run, args.out, method=args.method, projection=args.projection,
        max_points=args.max_points, perplexity=args.perplexity, steps=args.steps,
        seed=args.seed, device=args.device, dpi=args.dpi,
    )
    print(f"wrote {out}")
    return 0


def _positive_float(text: str) -> float:
    try:
        return check_positive("value", text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}") from None


_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _add_commands(sub: argparse._SubParsersAction) -> None:
    _add_kaleidoscope(sub)
    _add_curves(sub)
    _add_embedding(sub)


def _add_kaleidoscope(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser(
        "kaleidoscope", formatter_class=_FORMATTER,
        help="animate teacher p and student q fields as a star graph (GIF or MP4)",
        description=(
            "The RKDO kaleidoscope. Nodes on a circle; each directed edge i->j is drawn with "
            "width proportional to the student's q(j|i) (the teacher's p(j|i) in the right "
            "panel of --split) and coloured by its KL term p(j|i) log(p(j|i)/q(j|i)). At each "
            "node a petal (the simplex over its top-3 neighbours) shows the teacher p (red), "
            "the student q (blue), the Euclidean direction p - q (purple) and the natural-"
            "gradient direction F_q^-1 (p - q), F_q^-1 = diag(q) - q q^T (green). Frames come "
            "from a simulation of the recursion p(t+1) = (1 - alpha) p(t) + alpha q(t) "
            "(--simulate, the default) or from the fields a training run recorded with "
            "`rkdo train --record-field N --record-every K` (--run DIR)."
        ),
    )
    k.add_argument("--out", default="kaleidoscope.gif",
                   help="output file: .gif (Pillow) or .mp4 (needs ffmpeg)")
    source = k.add_mutually_exclusive_group()
    source.add_argument("--simulate", action="store_true",
                        help="simulate the recursion (the default source)")
    source.add_argument("--run", metavar="DIR",
                        help="a run directory with fields.npz (or the .npz file itself)")
    k.add_argument("--split", action="store_true",
                   help="student (left) and teacher (right) side by side")
    k.add_argument("--nodes", type=int, default=None,
                   help=f"number of anchors drawn (default: {_DEFAULT_NODES}, or all of a "
                        "recording with fewer; a label-balanced subset of a run's probes)")
    k.add_argument("--theme", choices=("dark", "light"), default="dark", help="colour theme")
    k.add_argument("--frames", type=int, default=None,
                   help=f"number of frames (default: {_SIMULATED_FRAMES} simulated; all recorded "
                        "ones for --run, else evenly spaced)")
    k.add_argument("--fps", type=_positive_float, default=10.0, help="frames per second")
    k.add_argument("--dpi", type=_positive_float, default=150.0,
                   help="resolution (the split view is 13 x 7 inches)")
    k.add_argument("--cmap", default="coolwarm",
                   help="matplotlib colormap of the KL terms (a diverging one)")
    k.add_argument("--title", default="RKDO kaleidoscope", help="title text")
    _add_simulation_arguments(k.add_argument_group("simulation (--simulate)"))
    k.set_defaults(func=_cmd_kaleidoscope)


def _add_simulation_arguments(simulation: argparse._ArgumentGroup) -> None:
    simulation.add_argument("--points", type=int, default=None,
                            help="number of simulated points N (default: --nodes)")
    simulation.add_argument("--dim", type=int, default=3, help="dimension D of the points")
    simulation.add_argument("--clusters", type=int, default=3,
                            help="cluster centres the points are drawn around")
    simulation.add_argument("--spread", type=float, default=0.6,
                            help="standard deviation of the points around their centre")
    simulation.add_argument("--jitter", type=float, default=0.2,
                            help="standard deviation of the Gaussian augmentation of each view")
    simulation.add_argument("--temperature", type=_positive_float, default=0.2,
                            help="temperature tau of the cosine student kernel")
    simulation.add_argument("--alpha", type=float, default=0.05,
                            help="teacher update rate per frame, in [0, 1]")
    simulation.add_argument("--lr", type=float, default=1.0, help="SGD learning rate")
    simulation.add_argument("--steps-per-frame", type=int, default=1,
                            help="SGD steps between frames")
    simulation.add_argument("--debias", type=float, default=0.2,
                            help="uniform leak of the initial teacher p(0), in [0, 1)")
    simulation.add_argument("--seed", type=int, default=0,
                            help="random seed (same seed, same frames)")
    simulation.add_argument("--save-fields", metavar="FILE.npz", default=None,
                            help="also write the simulated fields in the fields.npz format")


def _add_curves(sub: argparse._SubParsersAction) -> None:
    from rkdo._figure_style import DPI

    c = sub.add_parser(
        "curves", formatter_class=_FORMATTER,
        help="training loss and evaluation metrics of one or more runs (PNG)",
        description=(
            "Plot each run's training loss (from metrics.jsonl) and every evaluation metric "
            "(linear probe, k-NN accuracy, NMI, ARI, held-out I-Con loss, ...) against the "
            "training step, one panel per quantity and one line per run. Training losses of "
            "different methods are different functions: compare the evaluation panels."
        ),
    )
    c.add_argument("runs", nargs="+", metavar="DIR", help="run directories")
    c.add_argument("--out", default="curves.png", help="output PNG")
    c.add_argument("--metrics", nargs="+", default=None,
                   help="evaluation metrics to plot (default: all found)")
    c.add_argument("--names", nargs="+", default=None,
                   help="legend names, one per run (default: directory names)")
    c.add_argument("--log-loss", action="store_true", help="logarithmic loss axis")
    c.add_argument("--dpi", type=_positive_float, default=DPI, help="resolution (dots per inch)")
    c.set_defaults(func=_cmd_curves)


def _add_embedding(sub: argparse._SubParsersAction) -> None:
    from rkdo._figure_style import DPI

    e = sub.add_parser(
        "embedding", formatter_class=_FORMATTER,
        help="2-D map of a run's test-set features coloured by label (PNG)",
        description=(
            "Load a trained run, compute the frozen features of its test images and draw them "
            "in 2-D, coloured by label: PCA, or the project's own t-SNE mode (free 2-D points "
            "optimised on the I-Con loss with a perplexity-calibrated Gaussian p and a "
            "Student-t q, started from PCA)."
        ),
    )
    e.add_argument("run", metavar="DIR", help="run directory written by `rkdo train`")
    e.add_argument("--out", default="embedding.png", help="output PNG")
    e.add_argument("--method", choices=("pca", "tsne"), default="pca", help="2-D map")
    e.add_argument("--projection", action="store_true",
                   help="use the projection head's output instead of backbone features")
    e.add_argument("--max-points", type=int, default=2000,
                   help="at most this many test images (a seeded random subset)")
    e.add_argument("--perplexity", type=_positive_float, default=30.0,
                   help="t-SNE perplexity")
    e.add_argument("--steps", type=int, default=300, help="t-SNE optimisation steps")
    e.add_argument("--seed", type=int, default=0, help="random seed")
    e.add_argument("--device", default="cpu", help="device for the encoder")
    e.add_argument("--dpi", type=_positive_float, default=DPI, help="resolution (dots per inch)")
    e.set_defaults(func=_cmd_embedding)


def add_parser(subparsers: argparse._SubParsersAction,
               commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Register ``viz`` with its sub-commands on the ``rkdo`` command's ``subparsers``
    (``commands``: ``["viz"]`` or None, the family's only command either way)."""
    viz = subparsers.add_parser(
        "viz", help=HELP["viz"],
        description="Pictures of neighbourhood-KL learning. Each sub-command has its own --help.",
    )
    sub = viz.add_subparsers(dest="viz_command", metavar="{kaleidoscope,curves,embedding}")
    sub.required = True
    _add_commands(sub)
    return viz
