"""``rkdo bench``, ``rkdo report`` and ``rkdo profile``: argument parsing only.

    rkdo bench GRID --out DIR     run a grid (resumable; a shipped name or a TOML file)
    rkdo report DIR               rebuild report.md and figures from a store
    rkdo profile                  FLOPs and time per training step, RKDO depth 1/3 vs I-Con

The work happens in :mod:`rkdo.bench` (grid, plan, store, runner), :mod:`rkdo.bench.report`
and :mod:`rkdo.bench.flops`; ``rkdo bench`` writes the report after the grid has run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "HELP"]

#: Each command's one-line help (``rkdo --help`` lists them without building their parsers).
HELP = {
    "bench": "run a benchmark grid (resumable, results stored per cell)",
    "report": "write report.md and figures from a bench store",
    "profile": "FLOPs and time per training step: RKDO depth 1 and 3 vs I-Con",
}


def _cmd_bench(args: argparse.Namespace) -> int:
    from rkdo import bench
    from rkdo.bench.report import write_report

    if args.list:
        for name in bench.shipped_grids():
            grid = bench.load_grid(name)
            print(f"{name:14s} {' '.join(grid.description.split())}")
        return 0
    if args.grid is None or args.out is None:
        raise ValueError("give a grid and --out DIR (or --list to see the shipped grids)")
    grid = bench.load_grid(args.grid)
    overrides: dict[str, Any] = {}
    if args.data_root is not None:
        overrides["data_root"] = args.data_root
    if args.download:
        overrides["download"] = True
    if args.device is not None:
        overrides["device"] = args.device
    if args.dry_run:
        jobs = bench.plan(grid, overrides)
        records = bench.read_results(args.out)
        done = 0
        for job in jobs:
            record = records.get(job.key)
            if bench.is_done(job, record):
                status = record["status"]
                done += 1
            elif record is not None and record.get("status") == "ok":
                status = "stale"  # stored with other settings: will rerun
            else:
                status = record["status"] if record else (
                    "skip" if job.skip_reason else "pending")
            print(f"{status:8s} {job.kind:8s} {job.key}")
        print(f"{done} of {len(jobs)} jobs done (grid {grid.name!r}, hash {grid.hash})")
        return 0
    summary = bench.run_grid(
        grid, args.out, allow_grid_change=args.allow_grid_change, overrides=overrides,
        progress=not args.no_progress, threads=args.threads, workers=args.workers,
        executor=args.executor, executor_options=_executor_options(args),
        command=_command_line(),
    )
    report = None if args.no_report else write_report(args.out)
    print(f"bench {grid.name}: {summary.total} jobs, {summary.done_before} done before, "
          f"{summary.ran} run now in {summary.seconds / 60:.1f} min, "
          f"{len(summary.failed)} failed, {len(summary.skipped)} skipped")
    for key in summary.failed:
        print(f"  failed: {key} (see {args.out}/results.jsonl; rerun the command to retry)")
    if report is not None:
        print(f"report: {report}")
    return 1 if summary.failed else 0


def _executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--executor`` gets from the resource and scheduler flags it uses."""
    resources = {key: value for key, value in (
        ("cpus", args.cpus_per_job), ("gpus", args.gpus_per_job),
        ("memory_gb", args.mem_gb_per_job), ("timeout_min", args.timeout_min)) if value is not None}
    options: dict[str, Any] = {"resources": resources} if resources else {}
    if args.executor == "ray" and args.ray_address is not None:
        options["address"] = args.ray_address
    if args.executor == "submitit":
        parameters = {}
        for item in args.slurm:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--slurm takes KEY=VALUE (e.g. partition=gpu), got {item!r}")
            parameters[key if key in _SUBMITIT_GENERIC else f"slurm_{key}"] = _number(value)
        options.update(cluster=args.submitit_cluster, parameters=parameters)
    elif args.slurm or args.submitit_cluster is not None:
        raise ValueError("--slurm and --submitit-cluster need --executor submitit")
    return options


_SUBMITIT_GENERIC = ("timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node",
                     "tasks_per_node", "name", "stderr_to_stdout")


def _number(text: str) -> Any:
    """``"4"`` -> 4, ``"1.5"`` -> 1.5, anything else stays text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _command_line() -> str:
    """How this process was started, as a user would type it."""
    as_module = Path(sys.argv[0]).name == "__main__.py"
    program = "python -m rkdo" if as_module else "rkdo"
    return shlex.join([*program.split(), *sys.argv[1:]])


def _cmd_report(args: argparse.Namespace) -> int:
    from rkdo.bench.report import write_report

    path = write_report(args.store, args.out)
    print(f"report: {path}")
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from rkdo.bench.flops import format_table, profile

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    variants = [(f"rkdo depth {depth}", {"method": "rkdo", "depth": depth})
                for depth in args.depths]
    variants += [(name, {"method": name}) for name in args.others]
    rows = profile(
        args.encoder, args.batch_size, args.image_size, args.channels, variants=variants,
        embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim, steps=args.steps,
        warmup=args.warmup, device=args.device, seed=args.seed,
    )
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        print(f"{args.encoder}, batch {args.batch_size}, {args.image_size} px, "
              f"{args.channels} channels, two views per step, {args.device}, "
              f"{torch.get_num_threads()} thread(s); FLOPs: torch.utils.flop_counter "
              "(matmuls and convolutions); time: median of full steps incl. Adam")
        print(format_table(rows))
    return 0


_GRID_FORMAT = """\
grid file (TOML):
  name = "my-grid"                 description = "..."
  seeds = [0, 1, 2]                durations = [1, 2, 5]     (epochs; one run each)
  treatment = "rkdo"               baseline = "icon"         (compared in the report)
  profile = true                   profile_steps = 5
  [settings]                       any `rkdo train` option shared by every run,
  encoder = "small-cnn"            e.g. batch_size, steps_per_epoch (10: the paper's
  eval_protocol = "both"           'epoch'), eval_protocol, probe_train_size
  [[datasets]]                     one per dataset, with its own overrides
  dataset = "fashion-mnist"
  [[methods]]                      one per method: a label, the method and its
  name = "rkdo"                    hyper-parameters; optional = true skips a method
  method = "rkdo"                  that cannot run here (e.g. lightly missing)
  depth = 3

example: rkdo bench digits-smoke --out runs/smoke

shipped grids (`rkdo bench --list` prints their whole descriptions):
"""


def _shipped_grids() -> str:
    """One line per grid file that ships with rkdo, read without importing torch."""
    import rkdo

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    lines = []
    for path in sorted((Path(rkdo.__file__).parent / "bench" / "grids").glob("*.toml")):
        description = tomllib.loads(path.read_text()).get("description", "")
        lines.append(f"  {path.stem:15s}" + textwrap.shorten(str(description), 61,
                                                             placeholder=" ..."))
    return "\n".join(lines)


def add_parser(subparsers: Any, commands: Sequence[str] | None = None) -> None:
    """Register the ``bench``, ``report`` and ``profile`` commands (or only the ``commands``
    named) on ``rkdo``'s subparsers."""
    adders = {"bench": _add_bench, "report": _add_report, "profile": _add_profile}
    for name in HELP if commands is None else commands:
        adders[name](subparsers)


def _add_bench(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench", help=HELP["bench"],
        description=textwrap.fill(
            "Run a grid of datasets x methods x durations x seeds. Each (dataset, method, "
            "seed) is trained once and evaluated after every duration; the untrained encoder "
            "is evaluated per (dataset, seed) as a floor. Every finished cell is stored at "
            "once in DIR/results.jsonl; rerunning the same command skips finished cells and "
            "resumes interrupted runs from their checkpoints; a failing cell is recorded and "
            "the grid goes on. A store made by another grid is refused. report.md and "
            "figures are written to DIR at the end.", 78),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_GRID_FORMAT + _shipped_grids(),
    )
    bench.add_argument("grid", nargs="?",
                       help="a grid TOML file, or the name of a shipped grid")
    bench.add_argument("--out", help="the store directory (created if needed)")
    bench.add_argument("--list", action="store_true", help="list the shipped grids and exit")
    bench.add_argument("--dry-run", action="store_true",
                       help="print every job and whether it is done, run nothing")
    bench.add_argument("--allow-grid-change", action="store_true",
                       help="use a store created by a different grid (results whose settings "
                            "are unchanged are kept, the others rerun)")
    bench.add_argument("--data-root", default=None,
                       help="where the datasets live (not part of a result's identity)")
    bench.add_argument("--download", action="store_true",
                       help="download missing datasets with torchvision")
    bench.add_argument("--device", default=None, help="auto, cpu or cuda[:N] for every run")
    bench.add_argument("--threads", type=int, default=None,
                       help="torch threads (default: torch's; on shared CPUs 1 avoids "
                            "OpenMP spin-waiting)")
    bench.add_argument("--workers", type=int, default=1,
                       help="jobs run at once, each in its own process (default: 1, in this "
                            "process); with N workers use --threads so N x threads fits the "
                            "cores")
    _add_executor_arguments(bench)
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument("--no-report", action="store_true",
                       help="do not write report.md at the end")
    bench.set_defaults(func=_cmd_bench)


def _add_executor_arguments(bench: argparse.ArgumentParser) -> None:
    """``--executor`` (its choices: the executors' names) and what the executors ask for."""
    from rkdo.bench.executors.catalogue import SUMMARIES

    where = "; ".join(f"{name}: {summary}" for name, summary in SUMMARIES.items())
    bench.add_argument("--executor", default=None, choices=tuple(SUMMARIES), metavar="NAME",
                       help=f"where cells run ({where}). Default: process if --workers > 1, "
                            "else local. With ray/submitit, --workers cells are in flight")
    bench.add_argument("--cpus-per-job", type=int, default=None,
                       help="CPUs each cell asks of Ray/Slurm (default: the grid's "
                            "[resources], else --threads or 1)")
    bench.add_argument("--gpus-per-job", type=int, default=None,
                       help="GPUs each cell asks of Ray/Slurm (default: the grid's "
                            "[resources], else 1 with --device cuda, else 0)")
    bench.add_argument("--mem-gb-per-job", type=float, default=None,
                       help="memory each cell asks of Ray/Slurm, in GB")
    bench.add_argument("--timeout-min", type=int, default=None,
                       help="Slurm time limit of each cell's job (default: 1440)")
    bench.add_argument("--ray-address", default=None,
                       help="the Ray cluster to join (default: RAY_ADDRESS, else a new local "
                            "one; 'auto': the cluster of this node)")
    bench.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                       help="a Slurm setting for every job, e.g. --slurm partition=gpu "
                            "--slurm account=proj (repeatable; submitit's slurm_KEY)")
    bench.add_argument("--submitit-cluster", default=None, choices=("slurm", "local"),
                       help="submitit's cluster (default: slurm where sbatch exists, else "
                            "local processes)")


def _add_report(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report", help=HELP["report"],
        description="Rebuild the paper's Tables 1-4 from a store's results, side by side with "
                    "the paper's published values, plus the same tables on fair yardsticks "
                    "(held-out static I-Con loss, k-NN and linear probe on the full test "
                    "split), compute efficiency, PNG figures and a verdict per paper claim.",
    )
    report.add_argument("store", help="the store directory written by `rkdo bench --out`")
    report.add_argument("--out", default=None,
                        help="where to write report.md and figures/ (default: the store)")
    report.set_defaults(func=_cmd_report)


def _add_profile(subparsers: Any) -> None:
    prof = subparsers.add_parser(
        "profile", help=HELP["profile"],
        description="Count FLOPs per training step (two views through the encoder plus the "
                    "loss; forward only, and forward+backward) with torch.utils.flop_counter, "
                    "and time full steps (median). Defaults are the paper's setting: "
                    "ResNet-18, batch 64, 32 px, RGB; the paper reports 9.5537 (depth 1) vs "
                    "9.5545 (depth 3) GFLOPs per step, forward only.",
    )
    prof.add_argument("--encoder", default="resnet18",
                      help="resnet18, resnet18-cifar or small-cnn (default: resnet18)")
    prof.add_argument("--batch-size", type=int, default=64, help="images per view (default: 64)")
    prof.add_argument("--image-size", type=int, default=32, help="pixels (default: 32)")
    prof.add_argument("--channels", type=int, default=3, help="input channels (default: 3)")
    prof.add_argument("--embedding-dim", type=int, default=64,
                      help="projection output dimension (default: 64)")
    prof.add_argument("--hidden-dim", type=int, default=512,
                      help="projection hidden width (default: 512)")
    prof.add_argument("--depths", type=int, nargs="+", default=[1, 3],
                      help="RKDO recursion depths to profile (default: 1 3)")
    prof.add_argument("--others", nargs="*", default=["icon"],
                      help="static methods to profile beside RKDO (default: icon)")
    prof.add_argument("--steps", type=int, default=10,
                      help="timed steps after warm-up; 0 counts FLOPs only (default: 10)")
    prof.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    prof.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    prof.add_argument("--threads", type=int, default=None, help="torch threads (CPU timing)")
    prof.add_argument("--seed", type=int, default=0, help="initialisation seed (default: 0)")
    prof.add_argument("--json", action="store_true", help="print JSON instead of a table")
    prof.set_defaults(func=_cmd_profile)
