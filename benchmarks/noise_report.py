"""Print (and write) the label-noise report of a fashion-noise store (issue 21).

    python benchmarks/noise_report.py /work/scratch/noise/store --out docs/results/noise-tables.md
"""

from __future__ import annotations

import argparse

from rkdo.bench.report.noise import build_noise_report, write_noise_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the bench store directory (results.jsonl)")
    parser.add_argument("--out", help="also write the report (with the floors) to this file")
    args = parser.parse_args()
    if args.out:
        print(f"written: {write_noise_report(args.store, args.out)}")
    else:
        print(build_noise_report(args.store))


if __name__ == "__main__":
    main()
