"""Bad inputs to the Python API are refused with one clear TypeError / ValueError, for every
preset of rkdo.methods, and the checks read only shapes, dtypes and devices (they run on the
``meta`` device, which has no values to read, so they cannot synchronise with a GPU)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from rkdo import methods
from rkdo.kernels import Cluster
from rkdo.neighbourhood import build_neighbourhood
from rkdo.teacher import TemporalRKDOLoss

torch.set_num_threads(1)

BATCH, DIM, INPUT_DIM = 8, 4, 5
OPTIONS = {
    "sne": {"perplexity": 3.0},
    "tsne": {"perplexity": 3.0},
    "cluster": {"dim": DIM, "n_clusters": 3},
    "kmeans": {"perplexity": 3.0, "dim": DIM, "n_clusters": 3},
}
PRESETS = [name for name in methods.names() if not methods.METHODS[name].outside]  # kernel pairs
PAIRED = [name for name in PRESETS if methods.METHODS[name].form != "single"]
SINGLE = [name for name in PRESETS if methods.METHODS[name].form == "single"]
# GaussianInput reads the smallest candidate count to check the perplexity: not meta-safe
META_SAFE = [name for name in PRESETS if "inputs" not in methods.METHODS[name].needs]


def _batch(device: str = "cpu") -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "z1": torch.randn(BATCH, DIM, generator=generator).to(device),
        "z2": torch.randn(BATCH, DIM, generator=generator).to(device),
        "labels": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1], device=device),
        "inputs": torch.randn(BATCH, INPUT_DIM, generator=generator).to(device),
    }


def _call(name: str, z1, z2=None, **overrides):
    """Call preset ``name`` on a good batch with some of its parts replaced."""
    loss = methods.get(name, **OPTIONS.get(name, {}))
    good = _batch()
    facts = {key: good[key] for key in methods.METHODS[name].needs}
    facts.update(overrides)
    if methods.METHODS[name].form == "single":
        return loss(z1, **facts)
    return loss(z1, good["z2"] if z2 is None else z2, **facts)


@pytest.mark.parametrize("name", PRESETS)
def test_good_batch_gives_a_finite_loss(name):
    good = _batch()
    assert torch.isfinite(_call(name, good["z1"], good["z2"]))


@pytest.mark.parametrize("name", PRESETS)
def test_numpy_embeddings_are_a_type_error(name):
    z1 = _batch()["z1"]
    with pytest.raises(TypeError, match=r"z1 must be a torch\.Tensor .* got numpy\.ndarray"):
        _call(name, z1.numpy())


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_bool_embeddings_are_a_type_error(name, dtype):
    z1, z2 = _batch()["z1"].to(dtype), _batch()["z2"].to(dtype)
    with pytest.raises(TypeError, match=f"floating-point tensor of embeddings, got {dtype}"):
        _call(name, z1, z2)


@pytest.mark.parametrize("name", PRESETS)
def test_featureless_embeddings_are_a_value_error(name):
    empty = torch.zeros(BATCH, 0)
    with pytest.raises(ValueError, match=r"at least one feature, got shape \(8, 0\)"):
        _call(name, empty, empty)


@pytest.mark.parametrize("name", PAIRED)
def test_views_of_mixed_dtype_or_device_are_refused(name):
    good = _batch()
    with pytest.raises(TypeError, match="same dtype, got torch.float32 and torch.float64"):
        _call(name, good["z1"], good["z2"].double())
    with pytest.raises(ValueError, match="same device, got cpu and meta"):
        _call(name, good["z1"], good["z2"].to("meta"))


@pytest.mark.parametrize("name", PRESETS)
def test_labels_of_shape_b1_are_refused_not_broadcast(name):
    labels = _batch()["labels"]
    good = _batch()
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\).*got \(8, 1\).*reshape"):
        _call(name, good["z1"], labels=labels[:, None])


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("fill", [1.0, float("nan")])
def test_float_labels_are_refused_nan_included(name, fill):
    good = _batch()
    labels = torch.full((BATCH,), fill)
    with pytest.raises(TypeError, match=r"labels must be an integer tensor .* labels\.long\(\)"):
        _call(name, good["z1"], labels=labels)


@pytest.mark.parametrize("name", PRESETS)
def test_numpy_or_foreign_device_labels_are_refused(name):
    good = _batch()
    with pytest.raises(TypeError, match=r"labels must be a torch\.Tensor .* numpy\.ndarray"):
        _call(name, good["z1"], labels=good["labels"].numpy())
    with pytest.raises(ValueError, match="labels is on meta but the embeddings are on cpu"):
        _call(name, good["z1"], labels=good["labels"].to("meta"))


@pytest.mark.parametrize("name", SINGLE)
def test_inputs_of_wrong_length_or_device_are_refused(name):
    good = _batch()
    with pytest.raises(ValueError, match="inputs must have one entry per sample"):
        _call(name, good["z1"], inputs=good["inputs"][:-1])
    with pytest.raises(ValueError, match="inputs is on meta"):
        _call(name, good["z1"], inputs=good["inputs"].to("meta"))


def test_supcon_value_with_proper_labels_is_unchanged_by_the_checks():
    good = _batch()
    loss = methods.get("supcon")
    value = loss(good["z1"], good["z2"], labels=good["labels"])
    # the same loss written out: p uniform over same-label candidates, q cosine softmax / 0.5
    z1 = torch.nn.functional.normalize(good["z1"].double(), dim=1)
    z2 = torch.nn.functional.normalize(good["z2"].double(), dim=1)
    same = (good["labels"][:, None] == good["labels"][None, :]).double()
    p = same / same.sum(1, keepdim=True)
    log_q = torch.log_softmax(z1 @ z2.T / 0.5, dim=1)
    expected = (p * (p.clamp_min(1e-300).log() - log_q)).sum(1).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", META_SAFE)
def test_the_loss_path_reads_no_values(name, monkeypatch):
    """On ``meta`` any ``.item()``, ``bool(t)`` or value-dependent branch would raise.

    torch has no autocast state for ``meta``; the kernels only ever disable autocast, so a
    no-op context stands in for it here.
    """
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    loss = methods.get(name, **OPTIONS.get(name, {})).to("meta")
    batch = _batch("meta")
    value = loss(batch["z1"], batch["z2"], labels=batch["labels"])
    assert value.device.type == "meta" and value.shape == ()


def test_neighbourhood_checks_read_no_values():
    batch = _batch("meta")
    for form in ("pair", "symmetric", "single"):
        z2 = None if form == "single" else batch["z2"]
        nb = build_neighbourhood(batch["z1"], z2, form=form, labels=batch["labels"],
                                 inputs=batch["inputs"], ids=torch.arange(BATCH, device="meta"))
        assert nb.labels.device.type == "meta"


def test_cluster_kernel_names_dimension_and_device_mismatches():
    good = _batch()
    loss = methods.get("cluster", dim=DIM + 1, n_clusters=3)
    with pytest.raises(ValueError, match=f"dimension {DIM + 1}, the embeddings {DIM}.*dim={DIM}"):
        loss(good["z1"], good["z2"])
    kernel = Cluster(3, DIM)
    nb = build_neighbourhood(good["z1"].to("meta"), good["z2"].to("meta"))
    with pytest.raises(ValueError, match=r"prototypes are on cpu, the embeddings on meta"):
        kernel.log_prob(nb)


def test_temporal_loss_refuses_float_index_and_labels_and_a_foreign_device():
    good = _batch()
    index = torch.arange(BATCH)
    loss = TemporalRKDOLoss(BATCH, supervisory="labels")
    assert torch.isfinite(loss(good["z1"], good["z2"], index=index, step=0, labels=good["labels"]))
    with pytest.raises(TypeError, match="index must be an integer tensor"):
        loss(good["z1"], good["z2"], index=index.float(), step=0, labels=good["labels"])
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        loss(good["z1"], good["z2"], index=index, step=0, labels=good["labels"].float())
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\)"):
        loss(good["z1"], good["z2"], index=index, step=0, labels=good["labels"][:, None])
    with pytest.raises(ValueError, match=r"teacher field is on cpu, the embeddings on meta"):
        loss(good["z1"].to("meta"), good["z2"].to("meta"), index=index, step=0,
             labels=good["labels"])
