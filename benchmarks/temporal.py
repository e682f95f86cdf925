"""Temporal RKDO benchmark: the theorem in the full-batch setting, then I-Con vs in-step RKDO vs
temporal RKDO at equal step budgets on digits (full batch and mini-batch) and Fashion-MNIST.

Sections (``--sections``, comma-separated; all by default):

- ``theorem``: full-batch RKDO (:mod:`rkdo.fullbatch`). Free logits per row (infinite capacity)
  and free 2-D Student-t embeddings (t-SNE's kernel, finite capacity) on a 500-digit subset with
  a perplexity-30 Gaussian target: ``L(t)`` against ``(1 - alpha) L(t-1)`` and against
  ``(1 - alpha) L(t-1) + alpha L*`` (``L*`` = the static floor reached at ``alpha = 0``), the static
  loss ``L(p0, q(t))`` and the 5-NN accuracy of the embedding.
- ``digits-full``: every step uses all training digits of a 600-digit subset as anchors and
  candidates (the full-batch setting with an encoder, one Adam step as the inner minimisation),
  small MLP encoder, test on the 360 test digits.
- ``digits-mini``: all 1,437 training digits in batches of 128.
- ``fashion``: Fashion-MNIST, the project's small CNN, batches of 128, stratified subsets of 3,000
  training and 2,000 test images (the field is dense over the subset; a 60k top-k field is
  timed in ``field``).
- ``field``: memory and update time of the field at n = 60,000 (top-k) and n = 10,000 (dense).
- ``fashion-60k`` and ``device-check`` (not in the default list; for ``--device cuda``): the whole
  Fashion-MNIST training set with a top-k field over 60,000 samples, batches of 256, 1,500
  steps (probes fit on a stratified 10,000 of the training images); and the field on the device
  against the CPU.

Variants (equal step budgets, same seeds, same batches and augmented views per seed):
``icon`` (IConLoss, tau 0.5, debias 0.2), ``in-step`` (RKDOLoss: alpha 0.5, depth 3, the
reference's), ``temporal a=A`` (constant alpha A), ``temporal a=A->0 cos`` (alpha annealed from A
to 0, cosine). alpha is a rate per *visit* of a row: on the full batch every step visits every
row, so the full-batch section uses A = 0.05 (about the per-step rate of A = 0.5 at batch 128 of
1,437) and shows A = 0.5 as the degenerate case; the mini-batch digits section shows A = 0.9 as
its degenerate case. The temporal variants use the cosine kernel at tau 0.5 with debias 0.2 and
beta = 0 (no temporal temperature decay), so that their only difference from ``icon`` is the
teacher field. Every table has the untrained encoder as a floor.

Yardsticks: weighted 20-NN and logistic-regression probe accuracy of the backbone features
(train split -> test split; the probe stops at 300 L-BFGS iterations, converged or not, the same
for every variant), and the held-out static I-Con loss
(``IConLoss(temperature=0.5, debias=0.2)`` on two-view batches of the test split, same views for
every model). Training losses are each variant's own objective: different functions, not
comparable across variants.

Run (about 15-20 minutes on one thread of a shared 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/temporal.py

``--quick`` shrinks every budget (a smoke test, a minute or two).
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rkdo import IConLoss, RKDOLoss
from rkdo.evaluation import extract_features, heldout_icon_loss, knn_accuracy, linear_probe
from rkdo.fullbatch import FreeEmbeddings, FreeLogits, FullBatchRKDO, static_log_prob
from rkdo.kernels import GaussianInput, StudentT
from rkdo.teacher import TemporalRKDOLoss
from rkdo.vision.augment import TwoViews
from rkdo.vision.data import load
from rkdo.vision.models import build_model

DEVICE = torch.device("cpu")


def table(rows: list[dict], columns: list[str], title: str) -> None:
    """Print ``rows`` as a fixed-width table."""
    print(f"\n### {title}\n")
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(width[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (width[c] + 2) for c in columns) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")).ljust(width[c]) for c in columns) + " |")


def mean_std(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


# ------------------------------------------------------------------------------- theorem


def loo_knn(points: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy (majority vote, Euclidean) of an embedding."""
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :k]
    votes = labels[nearest]
    predicted = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    return float((predicted == labels).mean())


def section_theorem(quick: bool) -> None:
    from sklearn.datasets import load_digits

    # free logits: infinite capacity, the contraction L(t) <= (1 - a) L(t-1)
    n = 60 if quick else 200
    g = torch.Generator().manual_seed(0)
    log_p0 = torch.log_softmax(3 * torch.randn(n, n, generator=g, dtype=torch.float64), 1)
    rows = []
    for alpha in (0.1, 0.3, 0.7):
        start = time.perf_counter()
        history = FullBatchRKDO(FreeLogits(n, seed=1), log_p0, alpha=alpha, outer_steps=10,
                                inner="armijo", inner_steps=5).fit().history_
        ratios = [r["after"] / r["previous"] for r in history[1:]]
        rows.append({
            "alpha": alpha,
            "L(0)": f"{history[0]['after']:.4f}",
            "L(10)": f"{history[-1]['after']:.2e}",
            "max L(t)/L(t-1)": f"{max(ratios):.4f}",
            "1-alpha": f"{1 - alpha:.2f}",
            "violations": sum(r["after"] > (1 - alpha) * r["previous"] + 1e-12
                              for r in history[1:]),
            "static L(p0,q)": f"{history[-1]['static']:.4f}",
            "time s": f"{time.perf_counter() - start:.1f}",
        })
    table(rows, list(rows[0]), f"Free logits (n = {n} rows, random p0), armijo inner step "
                               "x5, T = 10")

    # free 2-D Student-t embeddings: finite capacity
    digits = load_digits()
    n = 200 if quick else 500
    outer = 6 if quick else 15
    inputs = torch.tensor(digits.data[:n])
    labels = digits.target[:n]
    log_p0 = static_log_prob(GaussianInput(30.0), n, inputs=inputs)
    centred = inputs - inputs.mean(0)
    pca = torch.linalg.svd(centred, full_matrices=False)[2][:2]
    projected = centred @ pca.T
    init = 1e-2 * projected / projected[:, 0].std()  # t-SNE's PCA start, std 1e-2

    runs = {}
    configs = [("0 (static, I-Con)", dict(alpha=0.0)),
               ("0.1 constant", dict(alpha=0.1)),
               ("0.5 constant", dict(alpha=0.5)),
               ("0.5 -> 0 cosine", dict(alpha=0.5, schedule="cosine", alpha_final=0.0))]
    for name, kwargs in configs:
        student = FreeEmbeddings(n, 2, kernel=StudentT(), init=init)
        start = time.perf_counter()
        knn = []

        def measure(t, runner, knn=knn):
            knn.append(loo_knn(runner.student.embeddings.detach().numpy(), labels))
            return {}

        history = FullBatchRKDO(student, log_p0, outer_steps=outer, inner="armijo",
                                inner_steps=20, **kwargs).fit(measure).history_
        runs[name] = (history, knn, time.perf_counter() - start)
    floor = runs[configs[0][0]][0][-1]["after"]
    rows = []
    for name, (history, knn, seconds) in runs.items():
        slack = [(1 - r["alpha"]) * r["previous"] - r["after"] for r in history[1:]]
        with_floor = [(1 - r["alpha"]) * r["previous"] + r["alpha"] * floor - r["after"]
                      for r in history[1:]]
        rows.append({
            "alpha": name,
            "L(0)": f"{history[0]['after']:.4f}",
            "L(3)": f"{history[3]['after']:.4f}",
            f"L({outer})": f"{history[-1]['after']:.4f}",
            "min (1-a)L(t-1) - L(t)": f"{min(slack):+.4f}",
            "min (1-a)L(t-1) + aL* - L(t)": f"{min(with_floor):+.4f}",
            "static L(p0,q(T))": f"{history[-1]['static']:.4f}",
            "5-NN t=0": f"{knn[0]:.3f}",
            "5-NN t=3": f"{knn[3]:.3f}",
            f"5-NN t={outer}": f"{knn[-1]:.3f}",
            "time s": f"{seconds:.1f}",
        })
    table(rows, list(rows[0]),
          f"Free 2-D Student-t embeddings, {n} digits, p0 = Gaussian perplexity 30, armijo x20, "
          f"T = {outer}; L* = {floor:.4f} (alpha = 0 after T iterations)")
    print("\nL(t) is the loss against the moving teacher, KL(p(t) || q(t)); 'static' is "
          "KL(p0 || q(t)). A positive 'min' column means the bound held at every t.")


# ------------------------------------------------------------------------------- training


class MLPEncoder(nn.Module):
    """A small MLP for 8x8 digits with the EmbeddingModel interface (features / forward)."""

    def __init__(self, pixels: int = 64, width: int = 256, feature_dim: int = 128,
                 embedding_dim: int = 64) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(pixels, width), nn.ReLU(),
                                      nn.Linear(width, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(feature_dim, width), nn.BatchNorm1d(width),
                                  nn.ReLU(), nn.Linear(width, embedding_dim))

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


@dataclass
class Setting:
    name: str
    dataset: str
    encoder: str  # "mlp" or "small-cnn"
    batch: int | None  # None: the whole training set every step
    steps: int
    train_subset: int | None
    test_subset: int | None
    heldout_batch: int
    checkpoints: int  # k-NN measured this many times during training (0: only at the end)
    variants: tuple[str, ...] = ()
    probe_subset: int | None = None  # train images the probes use (None: all)


def make_variant(name: str, n_samples: int, steps: int) -> nn.Module:
    """``icon``, ``in-step`` or ``temporal a=A`` / ``temporal a=A->0 cos`` (see the docstring)."""
    if name == "icon":
        return IConLoss(temperature=0.5, debias=0.2)
    if name == "in-step":
        return RKDOLoss()
    rate = name.split("a=")[1].split()[0]
    schedule = "cosine" if rate.endswith("->0") else "constant"
    alpha = float(rate.removesuffix("->0"))
    return TemporalRKDOLoss(n_samples, alpha=alpha, schedule=schedule, total_steps=steps,
                            alpha_final=0.0, temperature=0.5, beta=0.0, debias=0.2)


def stratified(labels: Tensor, size: int | None, seed: int = 0) -> Tensor:
    """Indices of a class-balanced subset (all indices when ``size`` is None)."""
    if size is None or size >= labels.shape[0]:
        return torch.arange(labels.shape[0])
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(labels.shape[0]), train_size=size,
                               stratify=labels.numpy(), random_state=seed)
    return torch.as_tensor(np.sort(keep))


def build_encoder(setting: Setting, channels: int, size: int) -> nn.Module:
    if setting.encoder == "mlp":
        return MLPEncoder(pixels=channels * size * size)
    return build_model("small-cnn", channels, size, embedding_dim=64, hidden_dim=256)


def evaluate_model(model, probe_train, test, augment, heldout_batch) -> dict:
    train_f = extract_features(model, probe_train.images)
    test_f = extract_features(model, test.images)
    train_y, test_y = probe_train.labels.cpu(), test.labels.cpu()
    return {
        "knn": knn_accuracy(train_f, train_y, test_f, test_y, k=20),
        "probe": linear_probe(train_f, train_y, test_f, test_y, max_iter=300),
        "heldout": heldout_icon_loss(model, test.images, augment, batch_size=heldout_batch,
                                     seed=0),
    }


def knn_only(model, probe_train, test) -> float:
    train_f = extract_features(model, probe_train.images)
    test_f = extract_features(model, test.images)
    return knn_accuracy(train_f, probe_train.labels.cpu(), test_f, test.labels.cpu(), k=20)


def train_one(setting: Setting, variant: str | None, seed: int, data, augment) -> dict:
    """Train ``variant`` (None: no training, the floor) and evaluate."""
    train, probe_train, test = data
    torch.manual_seed(seed)
    model = build_encoder(setting, train.images.shape[1], train.images.shape[-1]).to(DEVICE)
    if variant is None:
        result = evaluate_model(model, probe_train, test, augment, setting.heldout_batch)
        return {**result, "loss": float("nan"), "seconds": 0.0, "field_mb": 0.0, "curve": []}
    n = train.images.shape[0]
    loss_fn = make_variant(variant, n, setting.steps).to(DEVICE)
    temporal = isinstance(loss_fn, TemporalRKDOLoss)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    batch = n if setting.batch is None else setting.batch
    per_epoch = n // batch
    order = torch.randperm(n, generator=generator, device=DEVICE)
    marks = {round(setting.steps * (c + 1) / setting.checkpoints) for c in
             range(setting.checkpoints)} if setting.checkpoints else set()
    curve, seconds, losses = [], 0.0, []
    for step in range(setting.steps):
        start = time.perf_counter()
        slot = step % per_epoch
        if slot == 0 and step > 0:
            order = torch.randperm(n, generator=generator, device=DEVICE)
        index = order[slot * batch:(slot + 1) * batch]
        view1, view2 = augment(train.images[index], generator)
        z1, z2 = model(view1), model(view2)
        if temporal:
            loss = loss_fn(z1, z2, index=index, step=step)
        else:
            loss = loss_fn(z1, z2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # a host sync: the timing covers the whole step
        seconds += time.perf_counter() - start
        if step + 1 in marks and step + 1 < setting.steps:
            curve.append(knn_only(model, probe_train, test))
    result = evaluate_model(model, probe_train, test, augment, setting.heldout_batch)
    if setting.checkpoints:
        curve.append(result["knn"])
    tail = max(1, setting.steps // 10)
    return {**result, "loss": float(np.mean(losses[-tail:])), "seconds": seconds,
            "field_mb": loss_fn.memory_bytes() / 2**20 if temporal else 0.0, "curve": curve}


def section_training(setting: Setting, seeds: list[int]) -> None:
    splits = load(setting.dataset)
    keep_train = stratified(splits.train.labels, setting.train_subset)
    keep_test = stratified(splits.test.labels, setting.test_subset)
    image_data = type(splits.train)
    train = image_data(splits.train.images[keep_train].to(DEVICE),
                       splits.train.labels[keep_train].to(DEVICE))
    test = image_data(splits.test.images[keep_test].to(DEVICE),
                      splits.test.labels[keep_test].to(DEVICE))
    keep_probe = stratified(train.labels.cpu(), setting.probe_subset)
    probe_train = image_data(train.images[keep_probe.to(DEVICE)],
                             train.labels[keep_probe.to(DEVICE)])
    size = splits.image_size
    if setting.dataset == "digits":  # no flips for digits, milder crops on 8 x 8 pixels
        augment = TwoViews(size, splits.channels, scale=(0.5, 1.0), flip_p=0.0)
    else:
        augment = TwoViews(size, splits.channels)
    results: dict[str, list[dict]] = {}
    started = time.perf_counter()
    for seed in seeds:  # seeds outermost: a run cut short still has whole seeds
        for variant in (None, *setting.variants):
            run = train_one(setting, variant, seed, (train, probe_train, test), augment)
            results.setdefault(variant or "untrained", []).append(run)
            print(f"  [{setting.name}] {variant or 'untrained'} seed {seed}: 20-NN "
                  f"{run['knn']:.3f} probe {run['probe']:.3f} held-out {run['heldout']:.3f} "
                  f"loss {run['loss']:.3f} {run['seconds']:.1f} s", flush=True)
    rows = []
    for name, runs in results.items():
        row = {
            "variant": name,
            "20-NN acc": mean_std([r["knn"] for r in runs]),
            "linear probe": mean_std([r["probe"] for r in runs]),
            "held-out I-Con loss": mean_std([r["heldout"] for r in runs]),
            "own train loss": "-" if name == "untrained" else
            mean_std([r["loss"] for r in runs]),
            "s / run": f"{np.mean([r['seconds'] for r in runs]):.1f}",
            "field MiB": f"{runs[0]['field_mb']:.1f}",
        }
        if setting.checkpoints and name != "untrained":
            curve = np.mean([r["curve"] for r in runs], axis=0)
            row["20-NN during training"] = " ".join(f"{c:.3f}" for c in curve)
        rows.append(row)
    batch = "all" if setting.batch is None else setting.batch
    epochs = setting.steps * (setting.batch or len(train)) / len(train)
    title = (f"{setting.name}: {setting.dataset}, {setting.encoder}, train {len(train)} / test "
             f"{len(test)} (probes fit on {len(probe_train)}), batch {batch}, {setting.steps} "
             f"steps ({epochs:.1f} epochs), seeds {seeds}, {DEVICE.type}; section took "
             f"{time.perf_counter() - started:.0f} s")
    table(rows, list(rows[-1]), title)


# ------------------------------------------------------------------------------- field


def section_field(quick: bool) -> None:
    rows = []
    for n, storage, batch in ((60_000, "topk", 128), (60_000, "topk", 1024),
                              (10_000, "dense", 128), (1_797, "dense", 128)):
        if quick and n > 10_000 and batch > 128:
            continue
        loss = TemporalRKDOLoss(n, alpha=0.5, storage="auto", topk=64, debias=0.2)
        g = torch.Generator().manual_seed(0)
        times = []
        for step in range(12):
            index = torch.randperm(n, generator=g)[:batch]
            z1 = torch.randn(batch, 64, generator=g)
            z2 = torch.randn(batch, 64, generator=g)
            start = time.perf_counter()
            loss(z1, z2, index=index, step=step)
            times.append(time.perf_counter() - start)
        base = IConLoss(debias=0.2)
        base_times = []
        for _ in range(12):
            z1, z2 = torch.randn(batch, 64), torch.randn(batch, 64)
            start = time.perf_counter()
            base(z1, z2)
            base_times.append(time.perf_counter() - start)
        assert loss.storage == storage
        rows.append({"n": n, "storage (auto)": loss.storage, "batch": batch,
                     "field MiB": f"{loss.memory_bytes() / 2**20:.1f}",
                     "temporal loss+update ms": f"{1e3 * np.median(times[2:]):.1f}",
                     "I-Con loss ms": f"{1e3 * np.median(base_times[2:]):.1f}"})
    table(rows, list(rows[0]), "The field: memory and forward+update time (one thread, "
                               "random embeddings of width 64, budget 1024 MiB, topk 64)")


def section_device_check() -> None:
    """The field on ``--device`` against the CPU: same losses and rows, duplicates included."""
    rows = []
    for storage in ("dense", "topk"):
        for supervisory in ("augmentation", "labels"):
            n, batch = 3_000, 256
            everything = torch.arange(n)
            fields = [(d, TemporalRKDOLoss(n, alpha=0.5, schedule="cosine", total_steps=8,
                                           debias=0.2, supervisory=supervisory,
                                           storage=storage, topk=32,
                                           labels=everything % 10 if supervisory == "labels"
                                           else None).to(d))
                      for d in (torch.device("cpu"), DEVICE)]
            worst_loss = worst_row = 0.0
            for step in range(8):
                g = torch.Generator().manual_seed(step)
                index = torch.randperm(n, generator=g)[:batch]
                index[1] = index[0]  # a repeated sample
                z1, z2 = torch.randn(batch, 32, generator=g), torch.randn(batch, 32, generator=g)
                labels = index % 10
                values = [f(z1.to(d), z2.to(d), index=index.to(d), step=step,
                            labels=labels.to(d)).item() for d, f in fields]
                worst_loss = max(worst_loss, abs(values[0] - values[1]) / abs(values[0]))
            probe = torch.arange(0, n, 7)
            row_sets = [f.rows(probe.to(d)).cpu() for d, f in fields]
            worst_row = float((row_sets[0] - row_sets[1]).abs().max())
            rows.append({"storage": storage, "supervisory": supervisory,
                         "max rel. loss diff": f"{worst_loss:.1e}",
                         "max row diff": f"{worst_row:.1e}",
                         "row sums": f"{float(row_sets[1].sum(1).min()):.6f}.."
                                     f"{float(row_sets[1].sum(1).max()):.6f}"})
    table(rows, list(rows[0]), f"The field on {DEVICE} vs the CPU (n = 3,000, batch 256, "
                               "8 steps, one sample repeated per batch)")


# ------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="theorem,digits-full,digits-mini,fashion,field")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    parser.add_argument("--device", default="cpu",
                        help="where to train (cuda for the fashion-60k and device-check sections)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    # the probe stops at 300 L-BFGS iterations (same for every variant); say so once, here
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if DEVICE.type == "cpu":
        torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    quick = args.quick
    # alpha is a rate per visit of a row: on the full batch every step visits every row, in
    # mini-batches of 128 out of 1,437 a row is visited every ~11 steps
    settings = {
        "digits-full": Setting("digits, full batch", "digits", "mlp", None,
                               30 if quick else 100, 600, None, 64, 0 if quick else 4,
                               ("icon", "in-step", "temporal a=0.05", "temporal a=0.05->0 cos",
                                "temporal a=0.5")),
        "digits-mini": Setting("digits, mini-batch", "digits", "mlp", 128,
                               60 if quick else 300, None, None, 64, 0 if quick else 4,
                               ("icon", "in-step", "temporal a=0.5", "temporal a=0.5->0 cos",
                                "temporal a=0.9")),
        "fashion": Setting("Fashion-MNIST, mini-batch", "fashion-mnist", "small-cnn", 128,
                           20 if quick else 100, 1_000 if quick else 3_000,
                           500 if quick else 2_000, 128, 0,
                           ("icon", "in-step", "temporal a=0.5", "temporal a=0.5->0 cos")),
        # for an accelerator: the whole training set, a top-k field over 60,000 samples
        "fashion-60k": Setting("Fashion-MNIST 60k, mini-batch", "fashion-mnist", "small-cnn",
                               256, 100 if quick else 1_500, None, None, 256, 0,
                               ("icon", "in-step", "temporal a=0.5", "temporal a=0.5->0 cos",
                                "temporal a=0.9"), probe_subset=10_000),
    }
    started = time.perf_counter()
    for section in args.sections.split(","):
        if section == "theorem":
            section_theorem(quick)
        elif section == "field":
            section_field(quick)
        elif section == "device-check":
            section_device_check()
        elif section in settings:
            section_training(settings[section], seeds)
        else:
            raise SystemExit(f"unknown section {section!r}; choose from theorem, "
                             f"{', '.join(settings)}, field, device-check")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal {time.perf_counter() - started:.0f} s, peak RSS {peak:.0f} MiB, "
          f"torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
