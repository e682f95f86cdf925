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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rkdo._validation import check_int
from rkdo.cli._common import flag, print_json

__all__ = ["add_parser", "add_config_arguments", "config_from_args", "HELP"]

#: Each command's one-line help (``rkdo --help`` lists them without building their parsers).
HELP = {
    "demo": "train I-Con and RKDO on digits and compare them (minutes on a CPU)",
    "train": "train one run (checkpointed, resumable, torchrun-ready)",
    "eval": "evaluate a trained run (its own settings: eval.json again)",
}

_TYPES = {"int": int, "float": float, "str": str}


class _Given(argparse.Action):
    """Store a flag's value and add its name to ``namespace.given`` (flags the user typed)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~rkdo.training.TrainConfig` field, in argument groups."""
    from rkdo.training.config import GROUPS, TrainConfig

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


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars: on a terminal unless ``--no-progress`` (never into a file or a pipe)."""
    return not args.no_progress and sys.stderr.isatty()


# the summary printed at the end of `rkdo train` and by `rkdo eval`: label, key
_SUMMARY = (
    ("linear probe acc", "linear_probe"),
    ("20-NN acc", "knn_acc_20"),
    ("200-NN acc (weighted)", "knn_acc_200"),
    ("5-NN same-label share", "neighbourhood_acc_5"),
    ("k-means NMI", "nmi"),
    ("k-means ARI", "ari"),
    ("k-means accuracy", "cluster_acc"),
    ("held-out I-Con loss", "heldout_icon_loss"),
    ("paper: linear probe acc", "paper_linear_probe"),
    ("paper: k-means NMI", "paper_nmi"),
    ("paper: k-means ARI", "paper_ari"),
    ("paper: 5-NN same-label share", "paper_neighbourhood_acc_5"),
    ("evaluation time (s)", "eval_seconds"),
)


def format_summary(result: dict[str, Any]) -> str:
    """A short table of an evaluation's numbers, the adapted sizes it used after them."""
    rows = [(label, result[key]) for label, key in _SUMMARY if key in result]
    known = {key for _, key in _SUMMARY} | {"epoch", "step"}
    rows += [(key, value) for key, value in result.items() if key not in known]
    if not rows:
        return "(no evaluation: --eval-protocol none)"
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value:.4f}" if isinstance(value, float)
                     else f"  {label:<{width}}  {value}" for label, value in rows)


def _cmd_train(args: argparse.Namespace) -> int:
    from rkdo.training import read_config, run_is_complete, train

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
    progress = _progress(args)
    if args.resume:
        changes = {name: getattr(args, name) for name in sorted(getattr(args, "given", ()))}
        complete = run_is_complete(out, changes)
        result = train(None, out, resume=True, changes=changes, progress=progress,
                       checkpoint_minutes=args.checkpoint_minutes)
    else:
        complete = False
        config = config_from_args(args)
        given = getattr(args, "given", set())
        from_file = read_config_file(args.config) if args.config else {}
        adapt = "batch_size" not in given and "batch_size" not in from_file and not (
            args.recipe and "batch_size" in _recipe(args.recipe))
        result = train(config, out, overwrite=args.overwrite, progress=progress,
                       checkpoint_minutes=args.checkpoint_minutes, adapt_batch_size=adapt)
    if args.json:
        print_json(result)
        return 0
    config = read_config(Path(out))
    if complete:
        print(f"{out}: the run is complete ({config.epochs} epochs); nothing to train. Its "
              f"evaluation (eval.json); `--resume {out} --epochs N` trains it further:")
    else:
        print(f"{out}: {config.method} on {config.dataset}, {config.epochs} epochs, batch "
              f"{config.batch_size}, seed {config.seed}; files: config.json, metrics.jsonl, "
              "checkpoint.pt, eval.json")
    print(format_summary(result))
    return 0


def _recipe(name: str) -> dict[str, Any]:
    from rkdo.training.recipes import RECIPES

    return RECIPES[name]


def _cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rkdo.distributed import resolve_device
    from rkdo.training import load_run, read_config
    from rkdo.training.components import evaluate_parts

    if args.probe_train_size is not None:
        check_int("--probe-train-size", args.probe_train_size, low=1)
    saved = read_config(Path(args.run)) if Path(args.run, "config.json").is_file() else None
    device = args.device or (saved.device if saved is not None else "cpu")
    run = load_run(args.run, device=device)
    # the run's own settings unless a flag says otherwise: its eval.json comes back exactly
    config = run.config
    config = replace(
        config,
        eval_protocol=args.protocol or (config.eval_protocol if config.eval_protocol != "none"
                                        else "full"),
        eval_projection=args.projection or config.eval_projection,
        probe_train_size=(args.probe_train_size if args.probe_train_size is not None
                          else config.probe_train_size))
    settings = (f"settings: protocol {config.eval_protocol}, "
                f"{'projection' if config.eval_projection else 'backbone'} features, "
                f"probe_train_size {config.probe_train_size}, image_size "
                f"{config.resolved_image_size()}, crop_scale {config.crop_scale}, jitter "
                f"{config.jitter}, seed {config.seed}, device {device} (the run's "
                "config.json, unless a flag said otherwise)")
    print(settings, file=sys.stderr if args.json else sys.stdout, flush=True)
    result = evaluate_parts(run.model, run.parts, config, resolve_device(device),
                            progress=_progress(args))
    if args.json:
        print_json(result)
        return 0
    print(format_summary(result))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rkdo.training.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, seed=args.seed, overwrite=True,
             progress=_progress(args))
    return 0


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help=HELP["demo"],
        description="Train I-Con and RKDO on scikit-learn's digits with the same seed, encoder "
                    "and budget, evaluate both (and the untrained encoder as a floor) on the "
                    "held-out split, print a table and save a figure. Runs on one thread unless "
                    "`rkdo --threads N demo` or OMP_NUM_THREADS says otherwise, so that the "
                    "table is the same on every machine (README.md shows it).",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--epochs", type=int, default=30, help="epochs per method (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true",
                      help="no progress bars (they show only on a terminal anyway)")
    demo.set_defaults(func=_cmd_demo)


def _add_train(sub: Any) -> None:
    from rkdo.method_table import describe
    from rkdo.training.recipes import RECIPES

    train = sub.add_parser(
        "train", help=HELP["train"],
        description="Train an encoder with an I-Con or RKDO loss on two augmented views. Writes "
                    "config.json, metrics.jsonl, checkpoint.pt and eval.json to --out. "
                    "Data parallel: torchrun --nproc_per_node N -m rkdo train ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods:\n" + describe(),
    )
    train.add_argument("--out", help="run directory to create")
    train.add_argument("--resume", metavar="DIR",
                       help="continue the interrupted run in DIR (its saved config is used)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing run in --out")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bars (they show only on a terminal anyway)")
    train.add_argument("--json", action="store_true",
                       help="print the final evaluation as JSON instead of a table")
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
    from rkdo.evaluation.names import PROTOCOLS

    evaluate = sub.add_parser(
        "eval", help=HELP["eval"],
        description="Linear probe, weighted k-NN (k=200, k=20), k-means NMI/ARI/accuracy, "
                    "neighbourhood accuracy and the held-out static I-Con loss of a run's "
                    "frozen encoder. Every setting comes from the run's config.json (protocol, "
                    "features, probe subset, image size, augmentation, seed, device), so the "
                    "numbers are the run's own eval.json unless a flag below says otherwise; "
                    "the settings used are printed first.",
    )
    evaluate.add_argument("run", help="run directory written by `rkdo train`")
    evaluate.add_argument("--protocol", default=None, choices=PROTOCOLS,
                          help="full test split, the paper's ~700-image protocol, or both "
                               "(default: the run's --eval-protocol, full if it had none)")
    evaluate.add_argument("--projection", action="store_true",
                          help="use the projection head's output instead of backbone features "
                               "(default: the run's --eval-projection)")
    evaluate.add_argument("--probe-train-size", type=int, default=None,
                          help="subsample the training split for the linear probe (default: "
                               "the run's --probe-train-size)")
    evaluate.add_argument("--device", default=None,
                          help="auto, cpu or cuda[:N] (default: the run's --device)")
    evaluate.add_argument("--no-progress", action="store_true",
                          help="no progress bar (it shows only on a terminal anyway)")
    evaluate.add_argument("--json", action="store_true",
                          help="print JSON (the settings line then goes to stderr)")
    evaluate.set_defaults(func=_cmd_eval)


def add_parser(subparsers: Any, commands: Sequence[str] | None = None) -> None:
    """Register ``demo``, ``train`` and ``eval`` (or only the ``commands`` named) on the
    ``rkdo`` command."""
    adders = {"demo": _add_demo, "train": _add_train, "eval": _add_eval}
    for name in HELP if commands is None else commands:
        adders[name](subparsers)
