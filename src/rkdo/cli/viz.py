"""``rkdo viz``: the kaleidoscope animation, training curves and feature maps (parsing only).

    rkdo viz kaleidoscope --out k.gif [--split] [--simulate | --run DIR]
    rkdo viz curves DIR [DIR ...] --out curves.png
    rkdo viz embedding DIR --out embedding.png [--method pca|tsne]

``add_parser(subparsers)`` registers ``viz`` on the ``rkdo`` command; ``main(argv)`` runs the
same sub-commands on their own (``python -m rkdo.cli.viz kaleidoscope ...``). Nothing here
imports matplotlib: the drawing modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_parser", "main"]


def _cmd_kaleidoscope(args: argparse.Namespace) -> int:
    from rkdo.viz.kaleidoscope import Fields, Kaleidoscope, load_fields, save_frames

    started = time.perf_counter()
    if args.run is not None:
        fields = load_fields(args.run)
        source = f"recorded fields of {args.run}"
        frames = args.frames
    else:
        from rkdo.viz.simulate import simulate

        frames = 50 if args.frames is None else args.frames
        simulation = simulate(
            n_points=args.nodes if args.points is None else args.points,
            dim=args.dim, clusters=args.clusters, spread=args.spread, jitter=args.jitter,
            temperature=args.temperature, alpha=args.alpha, lr=args.lr, frames=frames,
            steps_per_frame=args.steps_per_frame, debias=args.debias, seed=args.seed,
        )
        if args.save_fields is not None:
            simulation.save_fields(args.save_fields)
        fields = Fields(simulation.teacher, simulation.student, simulation.steps,
                        simulation.labels)
        source = f"simulation (seed {args.seed})"
    kaleidoscope = Kaleidoscope(
        fields, nodes=args.nodes, split=args.split, theme=args.theme, dpi=args.dpi,
        frames=frames, cmap=args.cmap, title=args.title,
    )
    try:
        height, width = kaleidoscope.size
        images = list(kaleidoscope.frames())
    finally:
        kaleidoscope.close()
    out = save_frames(images, args.out, args.fps,
                      reserved_colors=kaleidoscope.palette_colors())
    elapsed = time.perf_counter() - started
    print(f"wrote {out}: {len(images)} frames of {width}x{height} px, "
          f"{len(kaleidoscope.nodes)} nodes, from the {source}, in {elapsed:.1f} s")
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    from rkdo.viz.plots import plot_curves

    out = plot_curves(args.runs, args.out, metrics=args.metrics, names=args.names,
                      log_loss=args.log_loss, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def _config_value(config, key: str):
    if isinstance(config, dict):
        return config.get(key)
    return getattr(config, key, None)


def _cmd_embedding(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from rkdo.evaluation.protocols import extract_features
    from rkdo.training.loop import load_run
    from rkdo.viz.plots import embed_2d, plot_embedding

    if args.max_points < 3:
        raise ValueError(f"--max-points must be >= 3, got {args.max_points}")
    run = load_run(args.run, device=args.device)
    test = run.data.test
    images, labels = test.images, torch.as_tensor(test.labels)
    if len(labels) > args.max_points:
        chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))
        chosen = chosen[: args.max_points].sort().values
        images, labels = images[chosen], labels[chosen]
    options = {"projection": True} if args.projection else {}
    image_size = _config_value(run.config, "image_size")
    if image_size is not None:
        options["image_size"] = image_size
    features = extract_features(run.model, images, **options)
    features = features.cpu().numpy() if isinstance(features, torch.Tensor) else features
    points = embed_2d(np.asarray(features), args.method, perplexity=args.perplexity,
                      steps=args.steps, seed=args.seed)
    kind = "projection" if args.projection else "backbone"
    method = _config_value(run.config, "method") or ""
    dataset = _config_value(run.config, "dataset") or ""
    title = (f"{Path(args.run).name}: {method} on {dataset}, {len(labels)} test images, "
             f"{kind} features, {'PCA' if args.method == 'pca' else 't-SNE (tsne preset)'}")
    out = plot_embedding(points, labels.numpy(), args.out, title=title, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _add_commands(sub: argparse._SubParsersAction) -> None:
    formatter = argparse.ArgumentDefaultsHelpFormatter

    k = sub.add_parser(
        "kaleidoscope", formatter_class=formatter,
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
    k.add_argument("--nodes", type=int, default=12,
                   help="number of anchors drawn (a label-balanced subset of a run's probes)")
    k.add_argument("--theme", choices=("dark", "light"), default="dark", help="colour theme")
    k.add_argument("--frames", type=int, default=None,
                   help="number of frames (default: 50 simulated; all recorded ones for --run, "
                        "else evenly spaced)")
    k.add_argument("--fps", type=_positive_float, default=10.0, help="frames per second")
    k.add_argument("--dpi", type=_positive_float, default=100.0,
                   help="resolution (the split view is 13 x 7 inches)")
    k.add_argument("--cmap", default="coolwarm",
                   help="matplotlib colormap of the KL terms (a diverging one)")
    k.add_argument("--title", default="RKDO kaleidoscope", help="title text")
    simulation = k.add_argument_group("simulation (--simulate)")
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
    k.set_defaults(func=_cmd_kaleidoscope)

    c = sub.add_parser(
        "curves", formatter_class=formatter,
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
    c.add_argument("--dpi", type=_positive_float, default=100.0, help="resolution")
    c.set_defaults(func=_cmd_curves)

    e = sub.add_parser(
        "embedding", formatter_class=formatter,
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
    e.add_argument("--dpi", type=_positive_float, default=100.0, help="resolution")
    e.set_defaults(func=_cmd_embedding)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``viz`` with its sub-commands on the ``rkdo`` command's ``subparsers``."""
    viz = subparsers.add_parser(
        "viz", help="kaleidoscope animation, training curves, feature maps",
        description="Pictures of neighbourhood-KL learning. Each sub-command has its own --help.",
    )
    sub = viz.add_subparsers(dest="viz_command", metavar="{kaleidoscope,curves,embedding}")
    sub.required = True
    _add_commands(sub)
    return viz


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rkdo viz`` sub-commands without the top-level ``rkdo`` parser."""
    parser = argparse.ArgumentParser(
        prog="rkdo viz",
        description="Pictures of neighbourhood-KL learning. Each sub-command has its own --help.",
    )
    sub = parser.add_subparsers(dest="viz_command", metavar="{kaleidoscope,curves,embedding}")
    sub.required = True
    _add_commands(sub)
    args = parser.parse_args(argv)
    from rkdo.cli.main import run_command

    return run_command(args, f"rkdo viz {args.viz_command}")


if __name__ == "__main__":
    sys.exit(main())
