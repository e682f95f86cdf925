"""A command's wall time alone and beside another torch job: how well it shares the cores.

The neighbour is what a shared machine usually holds: a PyTorch process multiplying 1024 x 1024
matrices in a loop with torch's default settings (all cores, OpenMP's default wait policy). The
command runs once alone and once beside it, under each policy asked for:

- ``rkdo``: the ``rkdo`` command's own defaults (passive waiting; one thread per free core,
  one thread for ``rkdo demo``; :mod:`rkdo.cli._threads`);
- ``torch``: torch's defaults, as before the command set any (OpenMP's default wait policy, one
  thread per core): ``OMP_WAIT_POLICY`` set empty (OpenMP's default; libgomp says "Invalid
  value" and uses it) and ``OMP_NUM_THREADS`` = the number of cores.

The table gives the wall time of each run, the ratio beside / alone, and the one-minute load
average before each run (other processes on the machine count too: quote it with the figures).

    python benchmarks/shared_cores.py --policies rkdo torch -- demo --out /tmp/demo --no-progress
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

NEIGHBOUR = ("import torch\n"
             "a = torch.randn(1024, 1024)\n"
             "while True:\n"
             "    a = torch.tanh(a @ a)\n")


def _env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "RKDO_"))}
    if policy == "torch":
        env["OMP_WAIT_POLICY"] = ""  # set but empty: OpenMP's default policy, rkdo leaves it
        env["OMP_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))
    return env


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", default=["rkdo", "torch"],
                        choices=["rkdo", "torch"])
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds the neighbour runs before the command starts")
    parser.add_argument("command", nargs="+", help="the rkdo command line after `rkdo`")
    args = parser.parse_args()
    command = [sys.executable, "-m", "rkdo", *args.command]
    print(f"`rkdo {' '.join(args.command)}` on {len(os.sched_getaffinity(0))} cores")
    print("| policy | alone (s) | load before | beside a torch job (s) | load before | ratio |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)
    for policy in args.policies:
        alone, load_alone = _timed(command, _env(policy))
        neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR],
                                     env={k: v for k, v in os.environ.items()
                                          if not k.startswith("OMP_")})
        try:
            time.sleep(args.settle)
            beside, load_beside = _timed(command, _env(policy))
        finally:
            neighbour.terminate()
            neighbour.wait()
        print(f"| {policy} | {alone:.1f} | {load_alone:.1f} | {beside:.1f} | {load_beside:.1f} "
              f"| {beside / alone:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
