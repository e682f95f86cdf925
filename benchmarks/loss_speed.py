"""Loss speed: forward + backward time of the I-Con and RKDO losses on CPU.

Times ``loss(z1, z2).backward()`` on random ``(B, d)`` float32 embeddings for

- ``rkdo.IConLoss()`` (pair form, the reference baseline) and ``IConLoss(form="symmetric",
  debias=0)`` (the same 2B x 2B computation as NT-Xent),
- ``rkdo.RKDOLoss(depth=1)`` and ``RKDOLoss(depth=3)`` (the reference method),
- the reference notebooks' I-Con and RKDO as MISSION.md describes them (softmax, then ``log``,
  ``F.kl_div(..., reduction="batchmean")``, teacher mixed in probability space),
- lightly's ``NTXentLoss`` (if ``lightly`` is installed) as an outside reference,
- the streaming path of both losses (``streaming=True``: no ``(B, N)`` matrix of floats); the
  rkdo rows without "streaming" are the materialised fused path (``streaming=False``).

``--memory`` adds one table of peak memory and time per call at ``--memory-sizes`` (512 ...
32,768), each (implementation, batch) in a fresh process whose address space is capped at
``--memory-cap-mib`` above what it holds before the first call (so "OOM" means "does not fit
in that much memory"); peak = the rise of the process's peak resident set (VmHWM, reset just
before the first call) above its resident set then.
An implementation that runs out of memory is not tried at larger batches. The cells run with
``MALLOC_MMAP_THRESHOLD_=131072`` (``--mmap-threshold``): with glibc's adaptive default, freed
blocks stay in the heap and the peak resident set of a path that allocates per block (the
streaming one) read 330 MiB at B = 8192 for 77 MiB held at once. The fixed threshold costs page
faults (times in this table are higher than in the interleaved one, for every implementation).

The implementations are timed in interleaved rounds, call by call (each round runs one call of
every implementation), for ``--min-run-time`` seconds per implementation and at least
``--rounds`` rounds; the medians pool all rounds. (Until this change a round ran each
implementation for ``--min-run-time / --rounds`` seconds in one block, which let the load of a
shared machine change between implementations: RKDO / I-Con read 1.33 in one run and 1.69 in
the next.)
Ratios are printed next to issue 12's goals (met / not met).

Every implementation L2-normalises its inputs inside the timed call (the notebooks' head does it
in the model, rkdo's cosine kernel and lightly in the loss). Prints markdown tables: median time
per call in milliseconds and the ratios the issue asks about.

Two clocks per call: wall time (``time.perf_counter``) and the process's CPU time
(``time.process_time``). On a machine shared with other jobs the wall time includes waiting for a
core; with one thread the CPU time does not, so the ratios are computed from CPU time unless
``--clock wall`` is given.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/loss_speed.py --threads 1

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` here unless already set: on a shared machine spinning
OpenMP workers distort timings (MISSION.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rkdo import IConLoss, RKDOLoss  # noqa: E402

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def notebook_icon(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5,
                  debias: float = 0.2) -> torch.Tensor:
    """The reference notebooks' I-Con baseline, written the way they write it."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    batch = z1.shape[0]
    sim = torch.mm(z1, z2.t())
    q = F.softmax(sim / tau, dim=1)
    p = torch.eye(batch, dtype=z1.dtype, device=z1.device) * (1 - debias) + debias / batch
    return F.kl_div(torch.log(q), p, reduction="batchmean")


def notebook_rkdo(z1: torch.Tensor, z2: torch.Tensor, depth: int = 3, alpha: float = 0.5,
                  tau: float = 0.5, beta: float = 0.1) -> torch.Tensor:
    """The reference notebooks' in-step RKDO: probabilities mixed, gradient through the teacher."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    sim = torch.mm(z1, z2.t())
    p = torch.eye(z1.shape[0], dtype=z1.dtype, device=z1.device)
    q = F.softmax(sim / tau, dim=1)
    loss = 0.0
    for t in range(1, depth + 1):
        p = (1 - alpha) * p + alpha * q
        q = F.softmax(sim / (tau * (1 - beta * t / depth)), dim=1)
        loss = loss + F.kl_div(torch.log(q), p, reduction="batchmean")
    return loss


def implementations() -> tuple[dict[str, LossFn], str]:
    """Name -> loss callable, and a note on lightly's availability."""
    impls: dict[str, LossFn] = {
        "rkdo I-Con (pair)": IConLoss(streaming=False),
        "rkdo I-Con symmetric, debias 0 (= NT-Xent)": IConLoss(form="symmetric", debias=0.0,
                                                               streaming=False),
        "rkdo RKDO depth 1": RKDOLoss(depth=1, streaming=False),
        "rkdo RKDO depth 3": RKDOLoss(depth=3, streaming=False),
        "rkdo I-Con streaming": IConLoss(streaming=True),
        "rkdo RKDO depth 3 streaming": RKDOLoss(depth=3, streaming=True),
        "notebook I-Con": notebook_icon,
        "notebook RKDO depth 1": lambda a, b: notebook_rkdo(a, b, depth=1),
        "notebook RKDO depth 3": notebook_rkdo,
    }
    try:
        import lightly
        from lightly.loss import NTXentLoss
    except ImportError as error:
        return impls, f"lightly not importable ({error}); its column is left out"
    impls["lightly NTXentLoss (2B x 2B)"] = NTXentLoss(temperature=0.5)
    return impls, f"lightly {lightly.__version__}"


def _stepper(loss_fn: LossFn, batch: int, dim: int) -> Callable[[], None]:
    """One forward + backward of ``loss_fn`` on random float32 embeddings (warmed up once)."""
    g = torch.Generator().manual_seed(batch)
    z1 = torch.randn(batch, dim, generator=g).requires_grad_()
    z2 = torch.randn(batch, dim, generator=g).requires_grad_()

    def step() -> None:
        z1.grad = z2.grad = None
        loss_fn(z1, z2).backward()

    step()  # warm-up (first-call allocations)
    return step


def time_interleaved(impls: dict[str, LossFn], batch: int, dim: int, min_run_time: float,
                     min_calls: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each call, implementations interleaved call by call (one call
    of each per round) for ``min_run_time`` seconds per implementation and at least
    ``min_calls`` rounds, so a change of load reaches every implementation alike."""
    steps = {name: _stepper(fn, batch, dim) for name, fn in impls.items()}
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in impls}
    start, budget, rounds = time.perf_counter(), min_run_time * len(impls), 0
    while rounds < min_calls or (time.perf_counter() - start < budget and rounds < 10_000):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            samples[name][1].append(time.process_time() - cpu)
            samples[name][0].append(time.perf_counter() - wall)
        rounds += 1
    return samples


def check_values(impls: dict[str, LossFn], dim: int) -> str:
    """rkdo's losses must give the notebooks' numbers (float64, B = 64)."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = (torch.randn(64, dim, generator=g, dtype=torch.float64) for _ in range(2))
    pairs = [("rkdo I-Con (pair)", "notebook I-Con"),
             ("rkdo RKDO depth 1", "notebook RKDO depth 1"),
             ("rkdo RKDO depth 3", "notebook RKDO depth 3")]
    worst = max(abs(float(impls[a](z1, z2)) - float(impls[b](z1, z2))) for a, b in pairs)
    return f"max |rkdo - notebook| loss value difference (float64, B = 64): {worst:.1e}"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for torch (default 1)")
    parser.add_argument("--min-run-time", type=float, default=2.0,
                        help="seconds of timing per cell (default 2)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="at least this many interleaved rounds, one call of every "
                             "implementation each (default 5)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="clock for the ratios (default: cpu with 1 thread, else wall)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="substrings of implementation names to time (default: all)")
    parser.add_argument("--memory", action="store_true",
                        help="also the table of peak memory and time per call, one process "
                             "per cell")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory table (no interleaved timing)")
    parser.add_argument("--memory-sizes", type=int, nargs="+",
                        default=[512, 2048, 4096, 8192, 16384, 32768])
    parser.add_argument("--memory-cap-mib", type=int, default=1024,
                        help="address space each cell may add before its first call "
                             "(default 1024 MiB)")
    parser.add_argument("--memory-calls", type=int, default=2,
                        help="timed calls per memory cell after one warm-up (default 2)")
    parser.add_argument("--mmap-threshold", type=int, default=131072,
                        help="MALLOC_MMAP_THRESHOLD_ of each memory cell (default 131072 bytes:"
                             " glibc returns every large tensor to the system when it is freed,"
                             " so the peak is what an implementation holds at once, not what "
                             "the allocator kept; 0: glibc's default, adaptive)")
    parser.add_argument("--cell", nargs=2, metavar=("NAME", "BATCH"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.cell:
        print(json.dumps(run_cell(args.cell[0], int(args.cell[1]), args)))
        return
    impls, lightly_note = implementations()
    print(check_values(impls, args.dim))
    if args.only:
        impls = {k: v for k, v in impls.items() if any(s in k for s in args.only)}
    print(
        f"\ntorch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads={torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"d={args.dim}, float32, CPU; {lightly_note}\n"
    )
    if not args.memory_only:
        timing_tables(impls, args)
    if args.memory or args.memory_only:
        memory_table([name for name in MEMORY if name in impls], args)


def timing_tables(impls: dict[str, LossFn], args: argparse.Namespace) -> None:
    """The interleaved timing table and the ratios."""
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    samples = {}
    for batch in args.batch_sizes:
        for name, pair in time_interleaved(impls, batch, args.dim, args.min_run_time,
                                           args.rounds).items():
            samples[name, batch] = pair
    times = {clock_name: {name: {b: statistics.median(samples[name, b][k]) * 1e3
                                 for b in args.batch_sizes} for name in impls}
             for k, clock_name in enumerate(("wall", "cpu"))}
    calls = {name: {b: len(samples[name, b][0]) for b in args.batch_sizes} for name in impls}

    sizes = args.batch_sizes
    print("median ms per forward+backward: CPU time / wall time (timed calls)\n")
    print("| loss | " + " | ".join(f"B={b}" for b in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in impls:
        row = [f"{times['cpu'][name][b]:.3g} / {times['wall'][name][b]:.3g} ({calls[name][b]})"
               for b in sizes]
        print(f"| {name} | " + " | ".join(row) + " |")
    _print_ratios(times[clock], sizes, clock)


# the memory table's implementations (materialised, streaming, outside references)
MEMORY = ["rkdo I-Con (pair)", "rkdo I-Con streaming", "rkdo RKDO depth 3",
          "rkdo RKDO depth 3 streaming", "notebook I-Con", "notebook RKDO depth 3",
          "lightly NTXentLoss (2B x 2B)"]


def _status(field: str) -> int:
    """Bytes of ``field`` (VmSize, VmRSS, VmHWM) of this process, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status (the memory table needs Linux)")


def run_cell(name: str, batch: int, args: argparse.Namespace) -> dict:
    """One (implementation, batch) in this process: CPU ms per call and the peak rise of the
    resident set, under an address-space cap; ``{"oom": ...}`` if it does not fit."""
    impls, _ = implementations()
    g = torch.Generator().manual_seed(batch)
    z1 = torch.randn(batch, args.dim, generator=g).requires_grad_()
    z2 = torch.randn(batch, args.dim, generator=g).requires_grad_()
    limit = _status("VmSize") + args.memory_cap_mib * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with open("/proc/self/clear_refs", "w") as refs:  # resets the peak (VmHWM) to VmRSS
        refs.write("5")
    base = _status("VmRSS")
    times = []
    try:
        for _ in range(args.memory_calls + 1):
            z1.grad = z2.grad = None
            start = time.process_time()
            impls[name](z1, z2).backward()
            times.append(time.process_time() - start)
    except (RuntimeError, MemoryError) as error:
        return {"oom": f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"}
    return {"ms": statistics.median(times[1:]) * 1e3,
            "peak_mib": (_status("VmHWM") - base) / 2 ** 20}


def memory_table(names: list[str], args: argparse.Namespace) -> None:
    """Peak memory and time per call of each implementation, one fresh process per cell."""
    results: dict[tuple[str, int], dict] = {}
    for name in names:
        for batch in args.memory_sizes:
            command = [sys.executable, __file__, "--cell", name, str(batch), "--dim",
                       str(args.dim), "--threads", str(args.threads), "--memory-cap-mib",
                       str(args.memory_cap_mib), "--memory-calls", str(args.memory_calls)]
            env = dict(os.environ)
            if args.mmap_threshold:
                env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            lines = done.stdout.strip().splitlines()
            results[name, batch] = (json.loads(lines[-1]) if done.returncode == 0 and lines
                                    else {"oom": f"exit {done.returncode}"})
            print(f"  {name} B={batch}: {results[name, batch]}", file=sys.stderr, flush=True)
            if "oom" in results[name, batch]:
                break
    _print_memory(names, results, args)


def _print_memory(names: list[str], results: dict[tuple[str, int], dict],
                  args: argparse.Namespace) -> None:
    sizes = args.memory_sizes
    print(f"\npeak memory (MiB above the process before its first call) and median CPU ms "
          f"per forward+backward ({args.memory_calls} calls after a warm-up), one process "
          f"per cell, address space capped at +{args.memory_cap_mib} MiB, "
          f"MALLOC_MMAP_THRESHOLD_={args.mmap_threshold or 'default'}; OOM: did not fit, "
          f"-: not tried after an OOM\n")
    print("| loss | " + " | ".join(f"B={b}" for b in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in names:
        cells = []
        for batch in sizes:
            cell = results.get((name, batch))
            cells.append("-" if cell is None else "OOM" if "oom" in cell
                         else f"{cell['peak_mib']:.0f} MiB, {cell['ms']:.3g} ms")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for kind in ("I-Con", "RKDO depth 3"):
        fused = "rkdo I-Con (pair)" if kind == "I-Con" else "rkdo RKDO depth 3"
        stream = f"rkdo {kind} streaming"
        both = [b for b in sizes if "ms" in results.get((fused, b), {})
                and "ms" in results.get((stream, b), {})]
        fits = {n: max([b for b in sizes if "ms" in results.get((n, b), {})], default=0)
                for n in (fused, stream)}
        ratios = ", ".join(f"B={b}: {results[stream, b]['ms'] / results[fused, b]['ms']:.2f}"
                           for b in both)
        print(f"\n{kind}: largest batch that fits: materialised {fits[fused]}, streaming "
              f"{fits[stream]} ({fits[stream] / max(fits[fused], 1):.0f}x); streaming / "
              f"materialised time per call where both fit (goal <= 1.3): {ratios}")


# (label, numerator, denominator, goal: the ratio must be <= goal; None for context rows)
RATIOS = [
    ("rkdo RKDO depth 3 / rkdo I-Con", "rkdo RKDO depth 3", "rkdo I-Con (pair)", 1.5),
    ("rkdo I-Con / notebook I-Con", "rkdo I-Con (pair)", "notebook I-Con", 1.2),
    ("rkdo I-Con (pair) / lightly NT-Xent", "rkdo I-Con (pair)",
     "lightly NTXentLoss (2B x 2B)", 1.0),
    ("rkdo RKDO depth 1 / rkdo I-Con", "rkdo RKDO depth 1", "rkdo I-Con (pair)", None),
    ("rkdo RKDO depth 3 / notebook RKDO depth 3", "rkdo RKDO depth 3", "notebook RKDO depth 3",
     None),
    ("notebook RKDO depth 3 / notebook I-Con", "notebook RKDO depth 3", "notebook I-Con", None),
    ("rkdo I-Con symmetric / lightly NT-Xent (same 2B x 2B work)",
     "rkdo I-Con symmetric, debias 0 (= NT-Xent)", "lightly NTXentLoss (2B x 2B)", None),
]


def _print_ratios(medians: dict[str, dict[int, float]], sizes: list[int], clock: str) -> None:
    """Each ratio of median times, next to its goal (issue 12) and whether it is met."""
    rows = [row for row in RATIOS if row[1] in medians and row[2] in medians]
    if not rows:
        return
    print(f"\nratios of median {clock} times (goal: ratio <= goal)\n")
    print("| ratio | goal | " + " | ".join(f"B={b}" for b in sizes) + " |")
    print("|---|---:|" + "---:|" * len(sizes))
    for label, a, b, goal in rows:
        cells = []
        for size in sizes:
            ratio = medians[a][size] / medians[b][size]
            verdict = "" if goal is None else (" met" if ratio <= goal else " not met")
            cells.append(f"{ratio:.2f}{verdict}")
        goal_text = "-" if goal is None else f"<= {goal:g}"
        print(f"| {label} | {goal_text} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
