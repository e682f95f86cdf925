"""``rkdo train | eval | demo``: the training command family (argument parsing only).

    rkdo demo                      I-Con vs RKDO on digits, side by side (the README's command)
    rkdo train --out DIR ...       train one run (also under torchrun: python -m rkdo train ...)
    rkdo eval DIR                  evaluate a trained run

The ``rkdo train`` flags are generated from :class:`rkdo.training.TrainConfig`'s field metadata:
one flag per field (``--batch-size`` for ``batch_size``), its help text and default, in the
argument group of the field's group; the parser remembers which flags were given, so that
``--resume DIR`` can apply the ones a resumed run may change (``--epochs`` to extend it, where
it executes) and refuse the others by name. The work happens in :mod:`rkdo.training` and
:mod:`rkdo.evaluation`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rkdo._validation import check_int
from rkdo.cli._common import flag, print_json

__all__ = ["add_parser", "add_config_arguments", "config_from_args"]

_TYPES = {"int": int, "float": float, "str": str}


class _Given(argparse.Action):
    """Store a flag's value and add its name to ``namespace.given`` (flags the user typed)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~rkdo.training.TrainConfig` field, in argument groups."""
    from rkdo.training import GROUPS, TrainConfig

    groups = {name: parser.add_argument_group(f"{name} options") for name in GROUPS}
    defaults = TrainConfig()
    for spec in dataclasses.fields(TrainConfig):
        group = groups[spec.metadata["group"]]
        default, help_text = getattr(defaults, spec.name), spec.metadata["help"]
        if isinstance(default, bool):
            group.add_argument(flag(spec.name), action=_Given, nargs=0, const=True,
                               default=False, help=help_text)
        elif isinstance(default, list):
            group.add_argument(flag(spec.name), action=_Given, type=int, nargs="*", default=[],
                               help=help_text)
        else:
            kind = _TYPES[str(spec.type).replace(" | None", "")]
            if "default" not in help_text:  # a help text that explains its default keeps it
                help_text = f"{help_text} (default: {default})"
            group.add_argument(flag(spec.name), action=_Given, type=kind, default=default,
                               help=help_text)


def read_config_file(path: str) -> dict[str, Any]:
    """The settings of a ``--config`` TOML file: ``TrainConfig`` field names (``batch_size`` or
    ``batch-size``), at the top or in tables named after the option groups (``[optimisation]``).
    Unknown names and wrong types are refused in one line naming the file and the key."""
    import difflib

    from rkdo.training import GROUPS, TrainConfig

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"--config {path} is not valid TOML: {error}") from None
    flat: dict[str, Any] = {}
    for key, value in table.items():
        inner = value.items() if isinstance(value, dict) and key in GROUPS else [(key, value)]
        for name, item in inner:
            flat[name.replace("-", "_")] = item
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for name in flat:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (see `rkdo train --help`)"
            raise ValueError(f"--config {path}: unknown setting {name!r}{hint}")
    try:
        TrainConfig.from_dict(flat)  # the types of config.json's keys, checked the same way
    except (TypeError, ValueError) as error:
        raise ValueError(f"--config {path}: {error}") from None
    return flat


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~rkdo.training.TrainConfig` the parsed flags describe. Later sources win:
    the defaults, ``--recipe NAME``, the ``--config FILE`` settings, the flags typed."""
    from rkdo.training import TrainConfig
    from rkdo.training.recipes import RECIPES

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    given = getattr(args, "given", set())
    recipe = getattr(args, "recipe", None)
    if recipe is not None:
        values.update({k: v for k, v in RECIPES[recipe].items() if k not in given})
    if getattr(args, "config", None) is not None:
        values.update({k: v for k, v in read_config_file(args.config).items()
                       if k not in given})
    return TrainConfig(**values)


def _cmd_train(args: argparse.Namespace) -> int:
    from rkdo.training import train

    for chosen in ("recipe", "config"):
        if args.resume and getattr(args, chosen):
            raise ValueError(f"--resume continues the run in {args.resume} with its saved "
                             f"config: drop --{chosen}")
    if args.resume and (args.out or args.overwrite):
        raise ValueError(f"--resume continues the run in {args.resume}: drop "
                         f"{'--out' if args.out else '--overwrite'} (or start a new run with "
                         "--out DIR without --resume)")
    out = args.resume or args.out
    if out is None:
        raise ValueError("give --out DIR for a new run, or --resume DIR to continue one")
    progress = not args.no_progress
    if args.resume:
        changes = {name: getattr(args, name) for name in sorted(getattr(args, "given", ()))}
        result = train(None, out, resume=True, changes=changes, progress=progress,
                       checkpoint_minutes=args.checkpoint_minutes)
    else:
        result = train(config_from_args(args), out, overwrite=args.overwrite, progress=progress,
                       checkpoint_minutes=args.checkpoint_minutes)
    if result:
        print_json(result)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from rkdo.evaluation import evaluate
    from rkdo.training import load_run
    from rkdo.vision.augment import TwoViews

    if args.probe_train_size is not None:
        check_int("--probe-train-size", args.probe_train_size, low=1)
    run = load_run(args.run, device=args.device)
    result = evaluate(run.model, run.data,
                      TwoViews(run.config.resolved_image_size(), run.data.channels),
                      protocol=args.protocol, projection=args.projection, seed=run.config.seed,
                      device=args.device, probe_train_size=args.probe_train_size)
    if args.json:
        print_json(result)
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float)
              else f"{key:<{width}}  {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rkdo.training.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, seed=args.seed, overwrite=True,
             progress=not args.no_progress)
    return 0


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="train I-Con and RKDO on digits and compare them (minutes on a CPU)",
        description="Train I-Con and RKDO on scikit-learn's digits with the same seed, encoder "
                    "and budget, evaluate both (and the untrained encoder as a floor) on the "
                    "held-out split, print a table and save a figure. Runs on one thread unless "
                    "`rkdo --threads N demo` or OMP_NUM_THREADS says otherwise, so that the "
                    "table is the same on every machine (README.md shows it).",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--epochs", type=int, default=30, help="epochs per method (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)


def _add_train(sub: Any) -> None:
    from rkdo import methods
    from rkdo.training.recipes import RECIPES

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
    train.add_argument("--checkpoint-minutes", type=float, default=5.0,
                       help="also write a checkpoint after this many minutes since the last "
                            "one (0: off; default: 5)")
    train.add_argument("--recipe", choices=sorted(RECIPES),
                       help="settings chosen on a validation split for a dataset "
                            "(docs/results/recipe.md); flags given override them")
    train.add_argument("--config", metavar="FILE",
                       help="a TOML file of settings (option names as keys, e.g. lr = 0.01 or "
                            "batch-size = 128, at the top or under [optimisation] and the other "
                            "group names); it overrides --recipe, flags given override it")
    add_config_arguments(train)
    train.set_defaults(func=_cmd_train)


def _add_eval(sub: Any) -> None:
    from rkdo.evaluation import PROTOCOLS

    evaluate = sub.add_parser(
        "eval", help="evaluate a trained run",
        description="Linear probe, weighted k-NN (k=200, k=20), k-means NMI/ARI/accuracy, "
                    "neighbourhood accuracy and the held-out static I-Con loss of a run's "
                    "frozen encoder on the whole test split.",
    )
    evaluate.add_argument("run", help="run directory written by `rkdo train`")
    evaluate.add_argument("--protocol", default="full", choices=PROTOCOLS,
                          help="full test split, the paper's ~700-image protocol, or both")
    evaluate.add_argument("--projection", action="store_true",
                          help="use the projection head's output instead of backbone features")
    evaluate.add_argument("--probe-train-size", type=int, default=None,
                          help="subsample the training split for the linear probe")
    evaluate.add_argument("--device", default="cpu", help="device (default: cpu)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(func=_cmd_eval)


def add_parser(subparsers: Any) -> None:
    """Register ``demo``, ``train`` and ``eval`` on the ``rkdo`` command."""
    _add_demo(subparsers)
    _add_train(subparsers)
    _add_eval(subparsers)
