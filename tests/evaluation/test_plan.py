"""Evaluation on small data: sizes adapt where a smaller value makes sense, and are reported;
what cannot be evaluated is refused before any feature is computed, naming the setting."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from rkdo import evaluation as ev
from rkdo.evaluation import metrics as mt
from rkdo.evaluation.plan import plan_evaluation

Split = namedtuple("Split", "images labels")
Splits = namedtuple("Splits", "train test")


def _labels(n: int, classes: int = 3) -> torch.Tensor:
    return torch.arange(n) % classes


def test_the_standard_sizes_stay_on_benchmark_sized_splits() -> None:
    plan = plan_evaluation(_labels(1000), _labels(300))
    assert (plan.knn_ks, plan.neighbourhood_k, plan.heldout_batch) == ((200, 20), 5, 64)
    assert plan.adapted == {}


def test_small_splits_adapt_and_say_what_they_used() -> None:
    plan = plan_evaluation(_labels(72), _labels(40), probe_train_size=100)
    assert plan.knn_ks == (72, 20) and plan.heldout_batch == 40 and plan.probe_train_size is None
    assert plan.adapted == {"probe_train_size_used": 72, "knn_k_200": 72,
                            "heldout_batch_size": 40}
    tiny = plan_evaluation(_labels(12), _labels(4))
    assert tiny.knn_ks == (12, 12) and tiny.neighbourhood_k == 3


@pytest.mark.parametrize(("train", "test", "protocol", "probe", "message"), [
    (torch.zeros(50, dtype=torch.long), _labels(20), "full", None,
     "the training split has 1 class; the linear probe needs at least 2"),
    (_labels(50), _labels(1), "full", None, "the test split has 1 image"),
    (_labels(50), _labels(20), "full", 2, "--probe-train-size 2 is smaller than the 3 classes"),
    (_labels(50), _labels(20), "full", 0, "--probe-train-size must be an integer >= 1, got 0"),
    (_labels(50), _labels(12), "paper", None, "the paper protocol needs at least 20 test images"),
])
def test_what_cannot_be_evaluated_is_refused_naming_the_setting(
    train, test, protocol: str, probe, message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_evaluation(train, test, protocol, probe)


def test_evaluate_on_a_small_split_uses_and_records_the_adapted_sizes() -> None:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        labels = _labels(n)
        return Split(labels.view(-1, 1, 1, 1).float() + 0.3 * torch.randn(n, 1, 4, 4,
                                                                          generator=g), labels)

    data = Splits(split(30), split(12))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    model.features = model.forward  # backbone features = the embedding, for this toy model

    def views(images, generator):
        return images, images + 0.01

    got = ev.evaluate(model, data, views, protocol="full", seed=0)
    assert (got["knn_k_200"], got["heldout_batch_size"]) == (30, 12)
    x_train = ev.extract_features(model, data.train.images)
    x_test = ev.extract_features(model, data.test.images)
    assert got["knn_acc_200"] == mt.knn_accuracy(x_train, data.train.labels, x_test,
                                                 data.test.labels, k=30)
    assert got["heldout_icon_loss"] == ev.heldout_icon_loss(model, data.test.images, views,
                                                            batch_size=12)
