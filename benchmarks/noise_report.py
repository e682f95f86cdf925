"""Print (and write) the label-noise report of a fashion-noise store (issue 21).

    python benchmarks/noise_report.py /work/scratch/noise/store --out docs/results/noise-tables.md \
        --figure docs/results/noise.png
"""

from __future__ import annotations

import argparse

from rkdo.bench.report.noise import (
    build_noise_report,
    noise_figure,
    noise_values,
    write_noise_report,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the bench store directory (results.jsonl)")
    parser.add_argument("--out", help="also write the report (with the floors) to this file")
    parser.add_argument("--figure", help="also draw the paired differences to this PNG")
    parser.add_argument("--duration", type=int, default=5, help="epochs read for the figure")
    args = parser.parse_args()
    if args.out:
        print(f"written: {write_noise_report(args.store, args.out)}")
    else:
        print(build_noise_report(args.store))
    if args.figure:
        print(f"written: {noise_figure(noise_values(args.store, args.duration), args.figure)}")


if __name__ == "__main__":
    main()
