"""KernelClustering, piece by piece, against KMeans, t-SNE + KMeans and N2D on the same inputs.

The ablation table of I-Con's Table 3, on raw pixels in [0, 1] (the estimator's PCA inside):
each row turns one switch of the recipe off (or one option on), everything else at the
defaults. Columns: NMI, ARI, Hungarian accuracy against the classes, wall time of ``fit`` (k-NN
graph and PCA included) and the process's CPU time (summed over its threads: with one thread,
about the wall time on an idle core), mean +- std over seeds, and the range of the 1-minute
load average seen while the row's cells ran. Peers on the same inputs: scikit-learn's KMeans
(``n_init=10``), openTSNE (FFT, PCA-50 input) followed by KMeans, and the N2D recipe
(McConville et al. 2019; our implementation of the paper's recipe, no code of theirs): a dense
autoencoder d-500-500-2000-10 (ReLU, MSE, Adam 1e-3, batch 256) trained on the pixels for
``N2D_EPOCHS`` epochs (the paper pretrains for 1000), UMAP of its codes to ``n_clusters``
dimensions (``n_neighbors=20``, ``min_dist=0``), a full-covariance Gaussian mixture with
``n_clusters`` components. Then the recursive target (``alpha``) beside the static one, paired
by seed; then, with ``--run RUN_DIR``, the backbone features of a trained encoder's test split
(``rkdo cluster RUN_DIR``'s input).

With ``--store PATH`` every finished cell (data set, row, seed) is appended to a JSON-lines
file and read back on the next run instead of being recomputed, so a grid can be run in
pieces, interrupted and resumed; cells of KernelClustering are keyed by a hash of the
estimator's code as well (:func:`estimator_hash`: the syntax trees, docstrings dropped, of every
rkdo module the estimator imports, and its defaults), so a changed estimator gets fresh cells
and an edited comment or docstring does not. ``--report`` prints the tables from the store
without fitting anything; ``--report --estimator HASH`` those of an older estimator (any key in
the store, older key schemes included).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/clustering.py \
        --data digits fashion-10k --seeds 3 --alpha-seeds 5 --store clustering.jsonl
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import ast  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

from rkdo.estimators import KernelClustering  # noqa: E402
from rkdo.evaluation.metrics import cluster_accuracy  # noqa: E402
from rkdo.evaluation.stats import paired_comparison  # noqa: E402

DATA = ("digits", "fashion-10k", "fashion-70k", "iris", "wine", "breast-cancer")
# scikit-learn's embedded tabular sets: never used to choose the estimator's defaults, so
# their rows say what that tuning costs elsewhere
HELD_OUT = {"iris": "load_iris", "wine": "load_wine", "breast-cancer": "load_breast_cancer"}


DEFAULTS_ROW = "full recipe (defaults)"
FULL_BATCH_ROW = "full batch (every point an anchor)"
PREVIOUS_ROW = "previous defaults (n_neighbors=10, shared_neighbors=2)"
# two switches, tuned on the labels of digits and Fashion-MNIST (issue 18): not the defaults
TUNED_ROW = "k = ceil(log2 n) and S^3 (n_neighbors='auto', shared_neighbors=3)"


def ablation_rows() -> dict[str, dict]:
    """One switch per row, flipped against the estimator's current defaults; row 1: defaults."""
    d = KernelClustering().get_params()
    rows: dict[str, dict] = {DEFAULTS_ROW: {}}
    if d["init"] == "spectral":
        rows["random start (no spectral init)"] = {"init": "random"}
    if d["walk_length"] >= 2:
        rows["no propagation (walk_length=1)"] = {"walk_length": 1}
    else:
        rows["propagation (walk_length=2)"] = {"walk_length": 2}
    if d["shared_neighbors"]:
        rows["no shared-neighbour weights"] = {"shared_neighbors": False}
        if d["shared_neighbors"] is not True and float(d["shared_neighbors"]) != 1.0:
            rows["shared-neighbour weights S^1 (shared_neighbors=1)"] = {"shared_neighbors": 1.0}
        if d["shared_neighbors"] is not True and float(d["shared_neighbors"]) != 2.0:
            rows["shared-neighbour weights S^2 (shared_neighbors=2)"] = {"shared_neighbors": 2.0}
    if d["n_neighbors"] != "auto":
        rows[TUNED_ROW] = {"n_neighbors": "auto", "shared_neighbors": 3.0}
    else:
        rows["fixed k = 10 (n_neighbors=10, not ceil(log2 n))"] = {"n_neighbors": 10}
        if d["shared_neighbors"] is not True and float(d["shared_neighbors"]) != 2.0:
            # two switches: the defaults before k = ceil(log2 n) and S^3 (issue 18)
            rows[PREVIOUS_ROW] = {"n_neighbors": 10, "shared_neighbors": 2.0}
    if d["hidden_layer_sizes"]:
        rows["linear assignment (no MLP)"] = {"hidden_layer_sizes": ()}
    if d["n_components"] is not None:
        rows["no PCA (raw pixels into the MLP)"] = {"n_components": None}
    if d["debias_p"] or d["debias_q"]:
        rows["no debiasing (a = b = 0)"] = {"debias_p": 0.0, "debias_q": 0.0}
    else:
        rows["debiased p and q (a = b = 0.5)"] = {"debias_p": 0.5, "debias_q": 0.5}
    if d["ema"]:
        rows["no EMA target (ema=0)"] = {"ema": 0.0}
    else:
        rows["EMA target (0.9)"] = {"ema": 0.9}
    rows["minibatches of 512 anchors"] = {"batch_size": 512}
    rows[FULL_BATCH_ROW] = {"batch_size": 10**9}
    rows["spectral start only (1 epoch)"] = {"max_iter": 1}
    if isinstance(d["n_init"], int) and d["n_init"] > 1:
        rows["one restart (n_init=1)"] = {"n_init": 1}
    else:
        rows["three restarts (n_init=3)"] = {"n_init": 3}
    return rows


N2D = "N2D recipe (AE + UMAP + GMM)"
# autoencoder epochs of the N2D recipe per data set (the paper: 1000 epochs, batch 256)
N2D_EPOCHS = {"digits": 200, "fashion-10k": 40, "fashion-70k": 10,
              **{name: 200 for name in HELD_OUT}}
# where the estimator's key starts; rkdo modules it imports, directly or not, are hashed with it
ESTIMATOR_MODULE = "rkdo.estimators.clustering"
# imported by the estimator but unable to change its labels: left out of its key
LABEL_NEUTRAL = {
    "rkdo._validation": "argument checks: they raise or pass, never alter a fit",
    "rkdo.estimators._user_warning": "which line of the caller a warning names",
}


def load(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw features in [0, 1] and labels (Fashion 10k: a fixed random subset); the held-out
    tabular sets standardised per feature (their columns have unrelated units)."""
    if name in HELD_OUT:
        import sklearn.datasets
        from sklearn.preprocessing import StandardScaler

        features, labels = getattr(sklearn.datasets, HELD_OUT[name])(return_X_y=True)
        return StandardScaler().fit_transform(features).astype(np.float32), labels
    from rkdo.vision.data import load as load_dataset

    splits = load_dataset("digits" if name == "digits" else "fashion-mnist")
    images = torch.cat([splits.train.images, splits.test.images]).flatten(1).numpy()
    labels = torch.cat([torch.as_tensor(splits.train.labels),
                        torch.as_tensor(splits.test.labels)]).numpy()
    if name == "fashion-10k":
        chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:10_000])
        images, labels = images[chosen], labels[chosen]
    scale = float(images.max())
    return images.astype(np.float32) / scale, labels


def _tsne_kmeans(x: np.ndarray, seed: int, k: int) -> np.ndarray:
    from openTSNE import TSNE

    reduced = PCA(50, random_state=seed).fit_transform(x) if x.shape[1] > 50 else x
    embedding = np.asarray(TSNE(n_jobs=1, random_state=seed).fit(reduced))
    return KMeans(k, n_init=10, random_state=seed).fit_predict(embedding)


def _n2d(x: np.ndarray, seed: int, k: int, epochs: int) -> np.ndarray:
    """The N2D recipe: autoencoder codes, UMAP to ``k`` dimensions, a ``k``-component GMM."""
    from sklearn.mixture import GaussianMixture
    from umap import UMAP

    torch.manual_seed(seed)
    widths = [x.shape[1], 500, 500, 2000, 10]

    def stack(sizes: list[int]) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    encoder, decoder = stack(widths), stack(widths[::-1])
    model = torch.nn.Sequential(encoder, decoder)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in data[torch.randperm(len(data), generator=generator)].split(256):
            optimiser.zero_grad()
            torch.nn.functional.mse_loss(model(batch), batch).backward()
            optimiser.step()
    with torch.no_grad():
        codes = encoder(data).numpy()
    manifold = UMAP(n_components=k, n_neighbors=20, min_dist=0.0, random_state=seed,
                    n_jobs=1).fit_transform(codes)
    return GaussianMixture(k, covariance_type="full", random_state=seed).fit_predict(manifold)


def peers(k: int, n2d_epochs: int) -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    return {
        "KMeans (n_init=10)": lambda x, s: KMeans(k, n_init=10, random_state=s).fit_predict(x),
        "t-SNE (openTSNE) + KMeans": lambda x, s: _tsne_kmeans(x, s, k),
        N2D: lambda x, s: _n2d(x, s, k, n2d_epochs),
    }


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _canonical(node: object) -> str:
    """A node as text, every field but empty ones (``None``, ``[]``: fields that later Pythons
    add, such as ``type_params``, then read the same); no line numbers, no comments."""
    if isinstance(node, ast.AST):
        fields = [f"{name}={_canonical(value)}" for name, value in ast.iter_fields(node)
                  if value is not None and not (isinstance(value, list) and not value)]
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return "[" + ", ".join(_canonical(item) for item in node) + "]"
    return repr(node)


def code_fingerprint(source: str) -> str:
    """What of a module's source can change what it computes: its syntax tree without
    docstrings or other bare string statements (comments and layout never reach the tree)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            kept = [statement for statement in body if not _is_docstring(statement)]
            node.body = kept or [ast.Pass()]
    return _canonical(tree)


def _module_path(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def estimator_modules(root: Path | None = None, start: str = ESTIMATOR_MODULE) -> dict[str, Path]:
    """``start`` and every rkdo module it imports, directly or not (imports inside functions
    too), but :data:`LABEL_NEUTRAL`'s: name -> file under ``root`` (the folder holding the
    installed ``rkdo`` package)."""
    if root is None:
        import rkdo

        root = Path(rkdo.__file__).resolve().parents[1]
    found: dict[str, Path] = {}
    pending = [start]
    while pending:
        module = pending.pop()
        if module in found or module in LABEL_NEUTRAL:
            continue
        found[module] = path = _module_path(root, module)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}".rstrip(".")
                # "from rkdo.x import y": y is a module or a name of rkdo.x
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            pending += [name for name in names if name.split(".")[0] == "rkdo"
                        and _module_path(root, name).exists() and name != "rkdo"]
    return dict(sorted(found.items()))


def estimator_hash(root: Path | None = None) -> str:
    """A short hash of the estimator's code and defaults: cells of a changed estimator are new
    cells, a docstring or comment edit keeps them (:func:`code_fingerprint` of each module of
    :func:`estimator_modules` under ``root``, then ``KernelClustering().get_params()``)."""
    digest = hashlib.sha256()
    for module, path in estimator_modules(root).items():
        digest.update(f"{module}\n{code_fingerprint(path.read_text())}\n".encode())
    digest.update(repr(sorted(KernelClustering().get_params().items())).encode())
    return digest.hexdigest()[:12]


class Store:
    """Finished cells in a JSON-lines file: appended as they finish, read back on the next run."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.cells: dict[str, dict] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    cell = json.loads(line)
                    self.cells[cell["key"]] = cell

    @staticmethod
    def key(data: str, row: str, seed: int, version: str) -> str:
        return json.dumps([data, row, seed, version])

    def get(self, key: str) -> dict | None:
        return self.cells.get(key)

    def put(self, key: str, cell: dict) -> None:
        cell = {"key": key, **cell}
        self.cells[key] = cell
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.write(json.dumps(cell) + "\n")


def measure(method: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, labels: np.ndarray,
            seed: int) -> dict[str, float]:
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = method(x, seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"nmi": float(normalized_mutual_info_score(labels, predicted)),
            "ari": float(adjusted_rand_score(labels, predicted)),
            "acc": float(cluster_accuracy(labels, predicted)), "seconds": seconds, "cpu": cpu,
            "load": [load_before, os.getloadavg()[0]]}


def cached(store: Store, key: str, method: Callable[[np.ndarray, int], np.ndarray],
           x: np.ndarray | None, labels: np.ndarray | None, seed: int,
           dry: bool = False) -> dict[str, float] | None:
    """The stored cell, or (unless ``dry``) a fresh measurement, stored."""
    cell = store.get(key)
    if cell is None and not dry and x is not None and labels is not None:
        store.put(key, measure(method, x, labels, seed))
        cell = store.get(key)
    return cell


def ours(params: dict, k: int) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda x, s: KernelClustering(n_clusters=k, random_state=s, **params).fit_predict(x)


def _cell(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def table(rows: dict[str, list[dict[str, float]]], title: str) -> str:
    lines = [f"### {title}", "",
             "| method | seeds | NMI | ARI | accuracy | wall s | CPU s | load |",
             "|---|---|---|---|---|---|---|---|"]
    for name, runs in rows.items():
        if not runs:
            continue
        cells = [_cell([r[key] for r in runs]) for key in ("nmi", "ari", "acc")]
        loads = [v for r in runs for v in r.get("load", [])]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
        # process CPU time: what the fit costs one uncontended core (every thread summed)
        cpu = _cell([r["cpu"] for r in runs], 1) if all("cpu" in r for r in runs) else "-"
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells)
                     + f" | {_cell([r['seconds'] for r in runs], 1)} | {cpu} | {load} |")
    if len(lines) == 4:
        lines[2:] = ["(no finished cells)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA, default=["digits"],
                        help="data sets (default: digits): images as raw pixels in [0, 1], "
                             "Fashion-MNIST read from the Debian package's IDX files; iris, "
                             "wine, breast-cancer: scikit-learn's tabular sets, standardised, "
                             "held out from the choice of defaults")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds 0..N-1 per row and peer (default: 3)")
    parser.add_argument("--rows", nargs="*", default=None,
                        help="ablation rows to run (default: all; 'none' for none)")
    parser.add_argument("--peers", nargs="*", default=None,
                        help="peers to run (default: all; none with an empty list)")
    parser.add_argument("--n2d-epochs", type=int, default=None,
                        help="autoencoder epochs of the N2D recipe (default: "
                             + ", ".join(f"{k} {v}" for k, v in N2D_EPOCHS.items()) + ")")
    parser.add_argument("--alpha", type=float, default=0.3,
                        help="the recursive target's rate in the static vs recursive "
                             "comparison (default: 0.3)")
    parser.add_argument("--alpha-seeds", type=int, default=0,
                        help="seeds of the paired static vs recursive comparison (0: skip)")
    parser.add_argument("--run", default=None, help="a trained run directory to cluster")
    parser.add_argument("--store", default=None,
                        help="JSON-lines file of finished cells: read back, appended to")
    parser.add_argument("--report", action="store_true",
                        help="print the tables from --store only, fitting nothing")
    parser.add_argument("--estimator", default=None,
                        help="estimator hash whose stored cells to use (default: the "
                             "installed estimator's); with --report, an older estimator's tables "
                             "(hashes of the earlier source-text key too)")
    parser.add_argument("--json", default=None, help="also write every measurement here")
    args = parser.parse_args()
    if args.report and not args.store:
        parser.error("--report prints from a store: give --store PATH")
    if args.estimator and not args.report:
        parser.error("--estimator HASH only selects stored cells: use it with --report")

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    store = Store(args.store)
    version = args.estimator or estimator_hash()
    if not args.report:
        # warm-up: first-call costs (imports, thread pools) are nobody's wall time
        KernelClustering(n_clusters=2, max_iter=2, n_init=1).fit(np.random.rand(60, 4))
        if args.peers is None or N2D in args.peers:  # numba's compilation of UMAP
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _n2d(np.random.rand(200, 8).astype(np.float32), 0, 3, 1)
    print(f"estimator hash {version}", flush=True)
    report: dict[str, dict] = {}
    ablation = ablation_rows()
    rows = ablation if args.rows is None else {
        name: params for name, params in ablation.items() if name in args.rows}
    for name in args.data:
        x, labels = (None, None) if args.report else load(name)
        k = 10 if labels is None else len(np.unique(labels))
        epochs = args.n2d_epochs or N2D_EPOCHS[name]
        methods = {row: (ours(params, k), version) for row, params in rows.items()
                   # the full batch is the defaults where n <= batch_size: not fitted twice
                   if not (row == FULL_BATCH_ROW and x is not None
                           and len(x) <= KernelClustering().batch_size)}
        if args.report and args.rows is None:
            # stored rows of this estimator that today's defaults no longer generate: after
            # its own rows, before the peers
            for cell in store.cells.values():
                data, row, _, tag = json.loads(cell["key"])
                if data == name and tag == version and row not in methods and not (
                        row == DEFAULTS_ROW or row.startswith(("static (", "recursive ("))):
                    methods[row] = (ours({}, k), version)
        for peer, method in peers(k, epochs).items():
            if args.peers is None or peer in args.peers:
                label = f"{peer}, AE {epochs} epochs" if peer == N2D else peer
                methods[label] = (method, "peer")
        if args.report and (args.peers is None or N2D in args.peers):
            # every stored N2D row of this data set, whatever its autoencoder's epochs
            for cell in store.cells.values():
                data, row, _, _ = json.loads(cell["key"])
                if data == name and row.startswith(N2D):
                    methods.setdefault(row, (peers(k, 0)[N2D], "peer"))
        results: dict[str, list[dict[str, float]]] = {}
        for row, (method, tag) in methods.items():
            cells = [cached(store, Store.key(name, row, seed, tag), method, x, labels, seed,
                            dry=args.report) for seed in range(args.seeds)]
            results[row] = [cell for cell in cells if cell is not None]
            if results[row]:
                print(f"{name} | {row}: " + ", ".join(
                    f"{key} {_cell([r[key] for r in results[row]])}" for key in
                    ("nmi", "ari", "acc", "seconds")), flush=True)
        print(table(results, f"{name}: {args.seeds} seeds asked, "
                             f"estimator {version}"), flush=True)
        report[name] = {"ablation": results}
        if args.alpha_seeds:
            static_row, recursive_row = "static (alpha = 0)", f"recursive (alpha = {args.alpha})"
            # the static fits are the defaults' row: its stored cells are reused
            pairs = [(cached(store, Store.key(name, DEFAULTS_ROW, s, version), ours({}, k),
                             x, labels, s, dry=args.report),
                      cached(store, Store.key(name, recursive_row, s, version),
                             ours({"alpha": args.alpha}, k), x, labels, s, dry=args.report))
                     for s in range(args.alpha_seeds)]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            static, recursive = [a for a, _ in pairs], [b for _, b in pairs]
            if pairs:
                print(table({static_row: static, recursive_row: recursive},
                            f"{name}: recursive target, {len(pairs)} seeds paired"))
            if len(pairs) >= 2:
                test = paired_comparison([r["nmi"] for r in recursive],
                                         [r["nmi"] for r in static])
                p_value = f"{test.t_pvalue:.3g}" if test.t_pvalue is not None else test.t_note
                print(f"NMI recursive - static: {test.mean_diff:+.4f} ± {test.std_diff:.4f}, "
                      f"paired t p = {p_value}", flush=True)
            report[name]["alpha"] = {"static": static, "recursive": recursive}
    if args.run:
        from rkdo.cli.features import load_features

        x, labels = load_features(args.run)
        k = len(np.unique(labels))
        results = {"KernelClustering (defaults)": [measure(ours({}, k), x, labels, s)
                                                   for s in range(args.seeds)],
                   "KMeans (n_init=10)": [measure(peers(k, 0)["KMeans (n_init=10)"], x, labels,
                                                  s) for s in range(args.seeds)]}
        print(table(results, f"encoder features of {args.run}: {x.shape}"), flush=True)
        report["encoder"] = results
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
