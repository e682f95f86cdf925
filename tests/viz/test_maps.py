"""Tests of rkdo.viz.maps: the PCA and t-SNE maps against scikit-learn, map pixels, markers
and class names."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rkdo.viz import maps
from rkdo.viz.maps import embed_2d, plot_embedding


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


def test_embedding_markers_shrink_with_n_and_classes_get_their_names(tmp_path,
                                                                     monkeypatch) -> None:
    sizes = [maps.marker_style(n) for n in (100, 2000, 70_000)]
    assert sizes[0][0] > sizes[1][0] > sizes[2][0] >= 0.5
    assert sizes[0][1] >= sizes[1][1] > sizes[2][1] >= 0.15
    captured = {}
    monkeypatch.setattr(maps, "save_figure",
                        lambda figure, out, **_: captured.setdefault("f", figure))
    rng = np.random.default_rng(0)
    plot_embedding(rng.normal(size=(50, 2)), np.arange(50) % 3, tmp_path / "m.png",
                   class_names=["T-shirt/top", "Trouser", "Pullover"])
    ax = captured["f"].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T-shirt/top", "Trouser",
                                                                   "Pullover"]
    assert ax.collections[0].get_sizes()[0] == pytest.approx(maps.marker_style(50)[0])
    with pytest.raises(ValueError, match="class_names has 2 names"):
        plot_embedding(rng.normal(size=(6, 2)), np.arange(6) % 3, tmp_path / "m.png",
                       class_names=["a", "b"])


def test_a_dense_map_is_a_palette_png_close_to_the_full_colour_one(tmp_path,
                                                                      monkeypatch) -> None:
    """20,000 translucent points blend into thousands of shades: the map is written with a
    256-colour palette, smaller than matplotlib's full-colour PNG of the same figure and within
    a few levels of it pixel by pixel (the legend's class colours included)."""
    from rkdo.viz.figures import save_figure

    rng = np.random.default_rng(0)
    labels = np.arange(20_000) % 10
    points = rng.normal(size=(20_000, 2)) + 4 * rng.normal(size=(10, 2))[labels]
    captured = {}

    def keep(figure, out, **options):
        captured.update(figure=figure, options=options)
        return save_figure(figure, out, **options)

    monkeypatch.setattr(maps, "save_figure", keep)
    out = plot_embedding(points, labels, tmp_path / "map.png", dpi=100, title="t")
    full = save_figure(captured["figure"], tmp_path / "full.png")
    with Image.open(out) as reduced, Image.open(full) as reference:
        assert reduced.mode == "P" and len(reduced.getcolors(256) or []) <= 256
        assert reduced.info["dpi"] == pytest.approx(reference.info["dpi"])  # the print size
        a = np.asarray(reduced.convert("RGB")).astype(int)
        b = np.asarray(reference.convert("RGB")).astype(int)
        assert len(np.unique(b.reshape(-1, 3), axis=0)) > 1000  # many shades to reduce
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 32 and np.abs(a - b).mean() < 1.5  # measured: 13 and 0.42
    assert out.stat().st_size < 0.5 * full.stat().st_size  # measured: 0.26
