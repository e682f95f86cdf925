"""KernelClustering at a million points ("Fashion-MNIST 1M") against MiniBatchKMeans and KMeans.

The data set follows the construction of MNIST8M / infimnist (Loosli, Canu and Bottou 2007:
more digits made by deforming the originals): the 70,000 Fashion-MNIST images (train + test,
pixels in [0, 1], float32) come first, unchanged; image ``70,000 + m`` is a deformed copy of
original ``m mod 70,000`` with its label, rotated by an integer angle drawn uniformly from
``[-ROTATE_DEG, ROTATE_DEG]`` degrees (``scipy.ndimage.rotate``, bilinear, about the centre)
and then translated by an integer shift drawn uniformly from ``[-SHIFT_PX, SHIFT_PX]`` pixels
on each axis (zeros shifted in), all draws from ``numpy.random.default_rng(data_seed)``. With
``--n`` at most 70,000 a seeded random subset of the originals is used instead. 1M x 784
float32 is 3.1 GB; the array is built in place, never copied by this script.

Each method is fitted in its own child process (``python clustering_scale.py --child ...``)
that builds the data, then fits once, so the peak memory of one method is not another's:
``peak RSS`` is the child's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the high-water mark
of its resident memory (the data included: ``data RSS`` is the resident memory once the data is
built, before the fit; numpy, scipy and torch buffers all count, which tracemalloc would not
see). ``wall s`` is the fit alone (``fit_predict``; data building excluded), ``CPU s`` the
child's CPU time over the fit (every thread summed), ``load`` the range of the 1-minute load
average sampled every few seconds during the fit. Methods, ``n_clusters=10``:

- ``KernelClustering`` with its defaults (PCA-50 inside, k-NN graph by nearest-neighbour descent
  above 100k points, spectral start, MLP assignments); its stages are timed by wrapping the
  estimator's internals in the child (wall seconds and sampled peak RSS per stage; a stage the
  estimator no longer has is skipped);
- scikit-learn's ``MiniBatchKMeans`` with its defaults (batch 1024, ``n_init="auto"``);
- scikit-learn's ``KMeans(n_init=1)`` (Lloyd) on the same pixels.

With ``--store PATH`` every finished cell (n, data seed, method, fit seed, estimator source
hash for KernelClustering) is appended to a JSON-lines file and read back instead of being
refitted; ``--report`` prints the table from the store only.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/clustering_scale.py \
        --n 1000000 --store clustering_scale.jsonl
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clustering import Store, estimator_hash  # noqa: E402

N_ORIGINAL = 70_000
ROTATE_DEG = 8  # largest rotation of a copy, degrees
SHIFT_PX = 2  # largest translation of a copy per axis, pixels
SMOKE_N = 20_000
OURS = "KernelClustering (defaults)"
METHODS = (OURS, "MiniBatchKMeans (defaults)", "KMeans (n_init=1)")
_RESULT = "RESULT "  # prefix of the child's one line of JSON on stdout
_BATCH = 50_000  # copies deformed at once
_NESTED = ("k-NN search", "warm start")  # stages inside another (graph; start)
OUTSIDE = "rest of fit (input checks, final assignments, centres)"
_SAMPLE_S = 2.0  # seconds between two samples of RSS and load
_INHERITED = object()  # a wrapped attribute the owner only inherited


# ------------------------------------------------------------------ data
def deform(images: np.ndarray, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``(b, h, w)`` images rotated by ``angles`` (integer degrees) about their centres, then
    translated by ``shifts`` ``(b, 2)`` (rows, columns; zeros shifted in)."""
    from scipy.ndimage import rotate

    rotated = np.empty_like(images)
    for angle in np.unique(angles):
        chosen = angles == angle
        rotated[chosen] = (images[chosen] if angle == 0 else
                           rotate(images[chosen], float(angle), axes=(2, 1), reshape=False,
                                  order=1, mode="constant", cval=0.0))
    b, h, w = images.shape
    pad = int(np.abs(shifts).max(initial=0))
    padded = np.pad(rotated, ((0, 0), (pad, pad), (pad, pad)))
    rows = (pad - shifts[:, 0])[:, None] + np.arange(h)
    cols = (pad - shifts[:, 1])[:, None] + np.arange(w)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def fashion_1m(n: int, seed: int = 0, originals: tuple[np.ndarray, np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x (n, 784) float32 in [0, 1], labels, source)``: the construction of the module
    docstring; ``source[i]`` is the original image that row ``i`` was made from.
    ``originals``: the 70,000 ``(images, labels)`` already loaded (default: ``clustering.load``)."""
    from clustering import load

    originals, classes = load("fashion-70k") if originals is None else originals
    rng = np.random.default_rng(seed)
    if n <= N_ORIGINAL:
        source = np.sort(rng.permutation(N_ORIGINAL)[:n])
        return originals[source], classes[source], source
    x = np.empty((n, originals.shape[1]), dtype=np.float32)
    x[:N_ORIGINAL] = originals
    source = np.concatenate([np.arange(N_ORIGINAL), np.arange(n - N_ORIGINAL) % N_ORIGINAL])
    angles = rng.integers(-ROTATE_DEG, ROTATE_DEG + 1, n - N_ORIGINAL)
    shifts = rng.integers(-SHIFT_PX, SHIFT_PX + 1, (n - N_ORIGINAL, 2))
    images = originals.reshape(-1, 28, 28)
    for start in range(0, n - N_ORIGINAL, _BATCH):
        part = slice(start, min(start + _BATCH, n - N_ORIGINAL))
        copies = deform(images[source[N_ORIGINAL:][part]], angles[part], shifts[part])
        x[N_ORIGINAL + part.start:N_ORIGINAL + part.stop] = copies.reshape(len(copies), -1)
    return x, classes[source], source


# ------------------------------------------------------------------ measuring (child)
def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Monitor:
    """Samples RSS and the load average in a thread; attributes RSS peaks to the open stage."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.stages: list[dict] = []
        self.stage_peak: dict[str, int] = {}
        self.loads: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._wrapped: list[tuple[object, str, object]] = []  # put back on exit

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_S):
            self.loads.append(os.getloadavg()[0])
            rss = _rss_bytes()
            for label in self.stack or [OUTSIDE]:
                self.stage_peak[label] = max(self.stage_peak.get(label, 0), rss)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.loads.append(os.getloadavg()[0])
        for owner, name, stored in reversed(self._wrapped):
            if stored is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, stored)

    def wrap(self, owner: object, name: str, label: str) -> None:
        """Time every call of ``owner.name`` as stage ``label`` (nothing if it is gone)."""
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed(*args, **kwargs):
            depth = len(self.stack)
            self.stack.append(label)
            start = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] stage {label}: start", file=sys.stderr,
                  flush=True)
            try:
                return original(*args, **kwargs)
            finally:
                self.stack.remove(label)
                seconds = time.perf_counter() - start
                peak = max(self.stage_peak.get(label, 0), _rss_bytes())
                self.stages.append({"stage": label, "depth": depth, "seconds": seconds,
                                    "peak_rss": peak,
                                    "max_rss_so_far": _peak_bytes()})
                print(f"[{time.strftime('%H:%M:%S')}] stage {label}: {seconds:.1f} s, "
                      f"sampled peak RSS {peak / 2**30:.2f} GiB, load "
                      f"{os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)

        # as stored (a classmethod stays one); absent if inherited
        self._wrapped.append((owner, name, vars(owner).get(name, _INHERITED)))
        setattr(owner, name, timed)


def _instrument(monitor: Monitor) -> None:
    """Stages of ``KernelClustering.fit``, wrapped where the estimator still has them."""
    import rkdo.estimators._cluster_graph as graph
    import rkdo.estimators.clustering as clustering

    estimator = clustering.KernelClustering
    monitor.wrap(estimator, "_reduce", "PCA + scaling")
    monitor.wrap(graph, "knn_search", "k-NN search")
    monitor.wrap(graph.SupervisoryGraph, "build", "graph (k-NN, shared neighbours, CSR)")
    monitor.wrap(graph.SupervisoryGraph, "spectral", "spectral embedding")
    monitor.wrap(estimator, "_start", "start (KMeans on embedding + warm start)")
    monitor.wrap(estimator, "_warm_start", "warm start")
    monitor.wrap(clustering, "optimise", "training epochs")
    monitor.wrap(estimator, "_objective", "static objective")


def method(name: str, seed: int) -> Any:
    """The unfitted estimator of ``name`` (``fit`` leaves ``labels_`` and ``n_iter_``)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from rkdo.estimators import KernelClustering

    k = 10
    return {
        OURS: lambda: KernelClustering(k, random_state=seed),
        "MiniBatchKMeans (defaults)": lambda: MiniBatchKMeans(k, random_state=seed),
        "KMeans (n_init=1)": lambda: KMeans(k, n_init=1, random_state=seed),
    }[name]()


def child(name: str, n: int, data_seed: int, seed: int) -> dict:
    """Build the data, fit ``name`` once, measure; runs in its own process."""
    import warnings

    import torch
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from rkdo.evaluation.metrics import cluster_accuracy

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    x, labels, _ = fashion_1m(n, data_seed)
    build_s = time.perf_counter() - start
    data_rss = _rss_bytes()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: data {x.shape} built in {build_s:.1f} s, "
          f"RSS {data_rss / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    estimator = method(name, seed)
    with Monitor() as monitor:
        if name == OURS:
            _instrument(monitor)
        cpu, wall = time.process_time(), time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = estimator.fit(x).labels_
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"nmi": float(normalized_mutual_info_score(labels, predicted)),
            "ari": float(adjusted_rand_score(labels, predicted)),
            "acc": float(cluster_accuracy(labels, predicted)), "seconds": wall, "cpu": cpu,
            "peak_rss": _peak_bytes(), "data_rss": data_rss, "build_seconds": build_s,
            "load": [min(monitor.loads), max(monitor.loads)], "stages": monitor.stages,
            "threads": os.environ.get("OMP_NUM_THREADS"), "n": n,
            "outside_peak_rss": monitor.stage_peak.get(OUTSIDE) if name == OURS else None,
            "n_iter": int(getattr(estimator, "n_iter_", -1)),
            # the same fit scored on its first 70,000 rows only (the unchanged originals)
            "nmi_originals": float(normalized_mutual_info_score(labels[:N_ORIGINAL],
                                                                predicted[:N_ORIGINAL]))}


# ------------------------------------------------------------------ driving (parent)
def run_child(name: str, n: int, data_seed: int, seed: int, timeout: float | None,
              cap_gib: float | None = None) -> dict | None:
    """Fit ``name`` in a fresh process; its stderr streams through; None if it failed."""
    command = [sys.executable, __file__, "--child", name, "--n", str(n), "--data-seed",
               str(data_seed), "--seed", str(seed)]
    if cap_gib is not None:
        command += ["--memory-cap-gib", str(cap_gib)]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name}: no result, stopped after --timeout {timeout} s", flush=True)
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT)]
    if done.returncode != 0 or not lines:
        print(f"{name}: child failed with exit status {done.returncode}", flush=True)
        return None
    return json.loads(lines[-1][len(_RESULT):])


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f}"


def _depth(stage: dict) -> int:
    """Nesting of a stage (cells stored before depths were recorded: by name)."""
    return stage.get("depth", int(stage["stage"] in _NESTED))


def table(cells: dict[str, dict], title: str) -> str:
    lines = [f"### {title}", "",
             "| method | n | NMI | ARI | accuracy | NMI first 70k | wall s | CPU s | peak RSS GiB "
             "| data RSS GiB | n_iter_ | load |", "|---" * 12 + "|"]
    for name, c in cells.items():
        lines.append(f"| {name} | {c['n']:,} | {c['nmi']:.3f} | {c['ari']:.3f} | {c['acc']:.3f} "
                     f"| {_number(c.get('nmi_originals'))} "
                     f"| {c['seconds']:.1f} | {c['cpu']:.1f} | {_gib(c['peak_rss'])} "
                     f"| {_gib(c['data_rss'])} | {c.get('n_iter', '-')} "
                     f"| {c['load'][0]:.1f}-{c['load'][1]:.1f} |")
    for name, c in cells.items():
        if c.get("stages"):
            lines += ["", f"Stages of {name} (wall s; sampled peak RSS GiB during the stage):",
                      "", "| stage | wall s | peak RSS GiB |", "|---|---|---|"]
            lines += [f"| {'↳ ' * _depth(s)}{s['stage']} | {s['seconds']:.1f} "
                      f"| {_gib(s['peak_rss'])} |" for s in c["stages"]]
            rest = c["seconds"] - sum(s["seconds"] for s in c["stages"] if _depth(s) == 0)
            outside = c.get("outside_peak_rss")
            lines.append(f"| {OUTSIDE} | {rest:.1f} | {_gib(outside) if outside else '-'} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None,
                        help="points (default: 1,000,000; 20,000 with --smoke); up to 70,000 a "
                             "random subset of the originals, above that originals + deformed "
                             "copies")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a quick end-to-end run: --n defaults to {SMOKE_N:,}")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        metavar="METHOD", help="methods to fit, in order (default: all: "
                        + "; ".join(METHODS) + ")")
    parser.add_argument("--seed", type=int, default=0,
                        help="random_state of every fit (default: 0)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seed of the subset / the copies' deformations (default: 0)")
    parser.add_argument("--store", default=None,
                        help="JSON-lines file of finished cells: read back, appended to "
                             "(default: none, everything is fitted)")
    parser.add_argument("--report", action="store_true",
                        help="print the table from --store only, fitting nothing")
    parser.add_argument("--estimator", default=None,
                        help="KernelClustering code hash (clustering.py's estimator_hash) "
                             "whose stored cells to use (default: the installed estimator's); "
                             "with --report, an older estimator's figures (older source-text "
                             "hashes too)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds after which a method's process is stopped and the method "
                             "left without a cell (default: none)")
    parser.add_argument("--memory-cap-gib", type=float, default=None,
                        help="cap on each fitting process's address space (RLIMIT_AS), GiB: a "
                             "fit that needs more fails with MemoryError instead of pushing the "
                             "machine into the OOM killer; numpy, torch and numba reserve a few "
                             "GiB of address space beyond what they touch (default: no cap)")
    parser.add_argument("--child", default=None, choices=METHODS, metavar="METHOD",
                        help="internal: fit METHOD in this process and print its cell as JSON")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    n = args.n if args.n is not None else SMOKE_N if args.smoke else 1_000_000
    if n < 20:
        parser.error(f"--n must be at least 20 (10 clusters need points), got {n}")
    if args.report and not args.store:
        parser.error("--report prints from a store: give --store PATH")
    if args.estimator and not args.report:
        parser.error("--estimator HASH only selects stored cells: use it with --report")
    if args.child:
        if args.memory_cap_gib is not None:
            cap = int(args.memory_cap_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print(_RESULT + json.dumps(child(args.child, n, args.data_seed, args.seed)), flush=True)
        return
    store = Store(args.store)
    version = args.estimator or estimator_hash()
    cells: dict[str, dict] = {}
    for name in args.methods:
        key = Store.key(f"fashion-1m n={n} data_seed={args.data_seed}", name, args.seed,
                        version if name == OURS else "peer")
        cell = store.get(key)
        if cell is None and not args.report:
            print(f"[{time.strftime('%H:%M:%S')}] fitting {name} on {n:,} points "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
            result = run_child(name, n, args.data_seed, args.seed, args.timeout,
                               args.memory_cap_gib)
            if result is not None:
                store.put(key, result)
                cell = store.get(key)
        elif cell is not None:
            print(f"{name}: read from the store", flush=True)
        if cell is not None:
            cells[name] = cell
    threads = ", ".join(sorted({str(c.get("threads")) for c in cells.values()})) or "-"
    print(table(cells, f"Fashion-MNIST 1M construction, n = {n:,}, seed {args.seed}, "
                       f"estimator {version}, OMP_NUM_THREADS of the fits: {threads}"),
          flush=True)


if __name__ == "__main__":
    main()
