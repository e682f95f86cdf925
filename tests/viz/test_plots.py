"""Tests of rkdo.viz.plots: metrics read from a run, curve and map pixels, the t-SNE map."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rkdo.viz.plots import embed_2d, plot_curves, plot_embedding, read_metrics


def test_read_metrics_and_curves_png(tmp_path, fake_run, pixels) -> None:
    runs = [fake_run(tmp_path / "icon", seed=0), fake_run(tmp_path / "rkdo", seed=1)]
    train, evaluation = read_metrics(runs[1])
    assert [r["step"] for r in train] == list(range(10, 101, 10))
    assert train[0]["loss"] == pytest.approx(2.0 - 0.1 - 0.1)
    assert [r["linear_probe"] for r in evaluation] == pytest.approx([0.6, 0.65])
    out = plot_curves(runs, tmp_path / "curves.png", dpi=100)
    image = np.asarray(Image.open(out).convert("RGB"))
    # loss + 4 metrics in 3 columns of 2.4 inches (a page's width), 2 rows
    assert image.shape == (round((2 * 2.42 + 0.5) * 100), round((3 * 2.4 + 0.4) * 100), 3)
    for color in ("#1f77b4", "#ff7f0e"):  # C0 and C1: one line per run
        assert np.all(np.abs(image.astype(int) - pixels.rgb(color)) <= 40, axis=-1).sum() > 300
    with pytest.raises(ValueError, match="available"):
        plot_curves(runs[:1], tmp_path / "x.png", metrics=["nope"])
    with pytest.raises(ValueError, match="one name per run"):
        plot_curves(runs, tmp_path / "x.png", names=["a"])
    with pytest.raises(ValueError, match="not a run directory"):
        read_metrics(tmp_path)


def test_final_eval_stands_in_for_a_log_without_evaluations(tmp_path, fake_run) -> None:
    run = fake_run(tmp_path / "run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(x for x in lines if '"eval"' not in x) + "\n")
    _, evaluation = read_metrics(run)
    assert evaluation == [{"epoch": 2, "step": 100, "linear_probe": 0.6}]


def test_embedding_map_and_plot(tmp_path, pixels) -> None:
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    centres = rng.normal(size=(3, 10)) * 6
    features = centres[labels] + rng.normal(size=(60, 10))
    np.testing.assert_allclose(embed_2d(features, "pca"),
                               PCA(n_components=2, random_state=0).fit_transform(features))
    mapped = embed_2d(features, "tsne", perplexity=10, steps=60)
    assert mapped.shape == (60, 2)
    accuracy = KNeighborsClassifier(3).fit(mapped, labels).score(mapped, labels)
    assert accuracy > 0.95
    np.testing.assert_array_equal(mapped, embed_2d(features, "tsne", perplexity=10, steps=60))
    with pytest.raises(ValueError, match="method"):
        embed_2d(features, "umap")
    with pytest.raises(ValueError, match="perplexity"):
        embed_2d(features, "tsne", perplexity=80)

    # three clusters at known places: each class colour appears in the picture
    points = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])[labels] + rng.normal(size=(60, 2))
    out = plot_embedding(points, labels, tmp_path / "map.png", title="test", dpi=100)
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (round(4.2 * 100), round(5.6 * 100), 3)
    for color in ("#1f77b4", "#ff7f0e", "#2ca02c"):
        drawn = 0.9 * pixels.rgb(color) + 0.1 * 255  # alpha 0.9 (60 points) over white
        assert np.all(np.abs(image.astype(int) - drawn) <= 20, axis=-1).sum() > 100


def test_tsne_map_has_a_lower_tsne_objective_than_the_pca_map() -> None:
    """scikit-learn's own t-SNE objective (joint P, Student-t Q) as the independent yardstick."""
    from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 5))
    joint = _joint_probabilities(pairwise_distances(features, squared=True), 8.0, 0)

    def objective(points: np.ndarray) -> float:
        return _kl_divergence(points.ravel(), joint, 1.0, 40, 2, compute_error=True)[0]

    pca = embed_2d(features, "pca")
    mapped = embed_2d(features, "tsne", perplexity=8, steps=150)
    best_pca = min(objective(pca * scale) for scale in np.logspace(-3, 2, 11))
    assert objective(mapped) < 0.8 * best_pca  # better than the PCA map at any scale


def _one_evaluation(run) -> None:
    """Keep one evaluation line (with its timing) in a fake run's log."""
    import json

    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r.get("kind") == "eval"]
    kept = [r for r in lines if r.get("kind") != "eval"] + [{**evals[-1], "eval_seconds": 9.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))


def test_runs_evaluated_once_get_a_few_panels_of_points_and_no_timings(tmp_path,
                                                                      fake_run) -> None:
    """`rkdo viz curves` drew 9 panels of single dots, eval_seconds among them, for runs that
    were evaluated once; now: the loss, one panel of scores, one of losses, display names."""
    from rkdo.viz import plots

    runs = [fake_run(tmp_path / name, seed=seed) for seed, name in enumerate(("a", "b"))]
    for run in runs:
        _one_evaluation(run)
    logs = [read_metrics(run) for run in runs]
    metrics = plots._metric_names([evaluation for _, evaluation in logs])
    assert "eval_seconds" not in metrics and "images_per_s" not in metrics
    with pytest.raises(ValueError, match="available"):
        plot_curves(runs, tmp_path / "x.png", metrics=["eval_seconds"])
    figure = plots._curves_figure(logs, ["a", "b"], metrics, False, 100)
    visible = [ax for ax in figure.axes if ax.axison]
    assert len(visible) == 3
    scores = visible[1]
    assert [t.get_text() for t in scores.get_yticklabels()] == ["linear probe", "20-NN",
                                                                 "k-means NMI"]
    assert [t.get_text() for t in visible[2].get_yticklabels()] == ["held-out I-Con loss"]
    assert all(ax.get_xlabel() for ax in visible)
    # PNG at 200 dpi by default
    out = plot_curves(runs, tmp_path / "c.png")
    assert round(Image.open(out).info["dpi"][0]) == 200


def test_embedding_markers_shrink_with_n_and_classes_get_their_names(tmp_path,
                                                                     monkeypatch) -> None:
    from rkdo.viz import plots

    sizes = [plots.marker_style(n) for n in (100, 2000, 70_000)]
    assert sizes[0][0] > sizes[1][0] > sizes[2][0] >= 0.5
    assert sizes[0][1] >= sizes[1][1] > sizes[2][1] >= 0.15
    captured = {}
    monkeypatch.setattr(plots, "_save_png", lambda figure, out: captured.setdefault("f", figure))
    rng = np.random.default_rng(0)
    plot_embedding(rng.normal(size=(50, 2)), np.arange(50) % 3, tmp_path / "m.png",
                   class_names=["T-shirt/top", "Trouser", "Pullover"])
    ax = captured["f"].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T-shirt/top", "Trouser",
                                                                   "Pullover"]
    assert ax.collections[0].get_sizes()[0] == pytest.approx(plots.marker_style(50)[0])
    with pytest.raises(ValueError, match="class_names has 2 names"):
        plot_embedding(rng.normal(size=(6, 2)), np.arange(6) % 3, tmp_path / "m.png",
                       class_names=["a", "b"])
