"""The ``rkdo`` command: argument parsing only; the work happens in the library modules.

    rkdo demo                      I-Con vs RKDO on digits, side by side (the README's command)
    rkdo train --out DIR ...       train one run (also under torchrun: python -m rkdo train ...)
    rkdo eval DIR                  evaluate a trained run
    rkdo viz ...                   kaleidoscope animation, curves, embeddings
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "build_parser", "run_command"]

_TRAIN_HELP: dict[str, str] = {
    "dataset": "digits (embedded, no download), fashion-mnist, cifar10, cifar100, stl10 or "
               "imagefolder:PATH (PATH/train and PATH/test class folders)",
    "data_root": "where the dataset lives (fashion-mnist default: /usr/share/datasets/"
                 "fashion-mnist, from `apt-get install dataset-fashion-mnist`)",
    "download": "download the dataset with torchvision if it is not under --data-root",
    "image_size": "training resolution in pixels (default: 8 digits, 28 fashion-mnist, 32 CIFAR, "
                  "64 STL-10)",
    "encoder": "resnet18 (ImageNet stem, the paper's), resnet18-cifar (3x3 stem, no max-pool) or "
               "small-cnn (fast on a CPU)",
    "embedding_dim": "output dimension of the projection head (L2-normalised)",
    "hidden_dim": "hidden width of the Linear-BN-ReLU-Linear projection head",
    "method": "loss preset (see `rkdo train --help` epilog): rkdo, icon, simclr, supcon, sne, "
              "tsne, cluster, kmeans",
    "recursion": "auto (the method's own), none (static I-Con), in-step (recursion inside each "
                 "step, the reference notebooks'), temporal (a teacher field across steps) or "
                 "temporal+in-step",
    "temperature": "temperature tau of the learned cosine kernel",
    "alpha": "RKDO teacher update rate in [0, 1]: p(t) = (1-alpha) p(t-1) + alpha q(t-1)",
    "depth": "RKDO in-step recursion depth K >= 1",
    "beta": "RKDO temperature decay in [0, 1): tau_t = tau (1 - beta t / K)",
    "debias": "uniform leak of the target in [0, 1) (default: the method's, 0.2 for icon)",
    "detach_teacher": "stop the gradient through the RKDO teacher (the reference lets it flow)",
    "form": "pair (view 1 vs view 2, the reference's), symmetric (NT-Xent 2B x 2B) or single",
    "perplexity": "perplexity of the Gaussian input kernel (sne, tsne, kmeans)",
    "n_clusters": "number of prototypes of the cluster kernel (cluster, kmeans; default 10)",
    "alpha_schedule": "temporal recursion: constant, linear, cosine or step decay of alpha",
    "alpha_final": "temporal recursion: alpha at the end of training",
    "epochs": "number of epochs (an epoch is a pass over the training split, or "
              "--steps-per-epoch batches)",
    "steps_per_epoch": "cap on batches per epoch (the paper's 'epoch' is 10 batches)",
    "batch_size": "global batch size (split over processes under torchrun)",
    "optimizer": "adam or sgd",
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "momentum": "SGD momentum",
    "lr_schedule": "none or cosine (annealed to 0 over the run)",
    "seed": "random seed (model init, data order, augmentations)",
    "device": "auto, cpu or cuda[:N]",
    "precision": "fp32 or bf16 (autocast)",
    "channels_last": "use the channels_last memory format",
    "eval_protocol": "full (whole official test split), paper (the reference's ~700 images), "
                     "both, or none",
    "eval_epochs": "also evaluate after these epochs, e.g. --eval-epochs 1 2 5",
    "eval_projection": "evaluate on the projection head's output instead of backbone features",
    "probe_train_size": "subsample the training split for the linear probe (bounds eval time)",
    "checkpoint_every": "write a checkpoint every N steps (0: at evaluations and at the end)",
    "log_every": "log a metrics line every N steps",
    "record_field": "record teacher/student fields over N probe anchors for `rkdo viz`",
    "record_every": "record the fields every N steps",
    "tensorboard": "also log to TensorBoard (pip install rkdo[tensorboard])",
}


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    from rkdo.training.loop import TrainConfig

    defaults = TrainConfig()
    for spec in dataclasses.fields(TrainConfig):
        flag = "--" + spec.name.replace("_", "-")
        default = getattr(defaults, spec.name)
        help_text = _TRAIN_HELP[spec.name]
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=help_text)
        elif spec.name == "eval_epochs":
            parser.add_argument(flag, type=int, nargs="*", default=[], help=help_text)
        else:
            kind = {"int": int, "float": float}.get(
                str(spec.type).replace(" | None", ""), str
            )
            parser.add_argument(flag, type=kind, default=default,
                                help=f"{help_text} (default: {default})")


def _config_from_args(args: argparse.Namespace) -> Any:
    from rkdo.training.loop import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def _cmd_train(args: argparse.Namespace) -> int:
    from rkdo.training.loop import train

    config = None if args.resume else _config_from_args(args)
    out = args.resume or args.out
    if out is None:
        raise ValueError("give --out DIR for a new run, or --resume DIR to continue one")
    result = train(config, out, resume=bool(args.resume), overwrite=args.overwrite,
                   progress=not args.no_progress)
    if result:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from rkdo.evaluation.protocols import evaluate
    from rkdo.training.loop import load_run

    run = load_run(args.run, device=args.device)
    result = evaluate(run.model, run.data, _augment_for(run), protocol=args.protocol,
                      projection=args.projection, seed=run.config.seed,
                      probe_train_size=args.probe_train_size)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float)
                  else f"{key:<{width}}  {value}")
    return 0


def _augment_for(run: Any) -> Any:
    from rkdo.vision import data as data_module
    from rkdo.vision.augment import TwoViews

    size = run.config.image_size or data_module.default_image_size(run.config.dataset)
    return TwoViews(size, run.data.channels)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rkdo.training.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, seed=args.seed, overwrite=True,
             progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``rkdo`` argument parser."""
    from rkdo import methods

    parser = argparse.ArgumentParser(
        prog="rkdo",
        description="Recursive KL Divergence Optimization (RKDO) and I-Con: train, evaluate, "
                    "benchmark and visualise neighbourhood-KL representation learning.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `rkdo demo`. Every command has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo", help="train I-Con and RKDO on digits and compare them (about 2 minutes)",
        description="Train I-Con and RKDO on scikit-learn's digits with the same seed, encoder "
                    "and budget, evaluate both (and the untrained encoder as a floor) on the "
                    "held-out split, print a table and save a figure.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--epochs", type=int, default=30, help="epochs per method (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser(
        "train", help="train one run (checkpointed, resumable, torchrun-ready)",
        description="Train an encoder with an I-Con or RKDO loss on two augmented views. Writes "
                    "config.json, metrics.jsonl, checkpoint.pt and eval.json to --out. "
                    "Data parallel: torchrun --nproc_per_node N -m rkdo train ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods:\n" + methods.describe(),
    )
    train.add_argument("--out", help="run directory to create")
    train.add_argument("--resume", metavar="DIR",
                       help="continue the interrupted run in DIR (its saved config is used)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing run in --out")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_arguments(train)
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "eval", help="evaluate a trained run",
        description="Linear probe, weighted k-NN (k=200, k=20), k-means NMI/ARI/accuracy, "
                    "neighbourhood accuracy and the held-out static I-Con loss of a run's "
                    "frozen encoder on the whole test split.",
    )
    evaluate.add_argument("run", help="run directory written by `rkdo train`")
    evaluate.add_argument("--protocol", default="full", choices=("full", "paper", "both"),
                          help="full test split, the paper's ~700-image protocol, or both")
    evaluate.add_argument("--projection", action="store_true",
                          help="use the projection head's output instead of backbone features")
    evaluate.add_argument("--probe-train-size", type=int, default=None,
                          help="subsample the training split for the linear probe")
    evaluate.add_argument("--device", default="cpu", help="device (default: cpu)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(func=_cmd_eval)

    for module in _EXTENSIONS:
        __import__(module, fromlist=["add_parser"]).add_parser(sub)
    return parser


_EXTENSIONS: tuple[str, ...] = ("rkdo.cli.bench", "rkdo.cli.viz")


def run_command(args: argparse.Namespace, name: str) -> int:
    """Run a parsed sub-command; bad input and stopped runs become one clear line, no traceback.

    Exit codes: 0 done, 2 bad input (ValueError, missing file), 1 training stopped, 130 Ctrl-C.
    """
    from rkdo.training.loop import TrainingError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"{name}: training stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; `rkdo train --resume DIR` continues a run and rerunning "
              "`rkdo bench` continues a grid, from the last checkpoint", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rkdo`` console script."""
    args = build_parser().parse_args(argv)
    return run_command(args, f"rkdo {args.command}")


if __name__ == "__main__":
    sys.exit(main())
