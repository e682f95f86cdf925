"""Set-up checks a config once and builds its loss once; the registry says what is allowed."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rkdo import distributed
from rkdo.training import TrainConfig, checks, loss_call, train, validate


def _count_everywhere(monkeypatch: pytest.MonkeyPatch, counts: Counter, real: Callable,
                      name: str) -> None:
    """Replace ``real`` in every rkdo module that holds it, so any call path is counted."""

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return real(*args, **kwargs)

    holders = [module for key, module in list(sys.modules.items())
               if key.startswith("rkdo") and getattr(module, real.__name__, None) is real]
    assert holders
    for module in holders:
        monkeypatch.setattr(module, real.__name__, counted)


def test_setup_checks_once_resolves_the_device_once_and_builds_the_loss_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: TrainConfig
) -> None:
    counts: Counter = Counter()
    for real in (checks.check_settings, loss_call.build_loss, distributed.resolve_device):
        _count_everywhere(monkeypatch, counts, real, real.__name__)
    train(fast, tmp_path / "run", progress=False, stop_after=1)
    assert counts == {"check_settings": 1, "build_loss": 1, "resolve_device": 1}
    counts.clear()
    train(None, tmp_path / "run", resume=True, progress=False, changes={"epochs": 3})
    assert counts == {"check_settings": 1, "build_loss": 1, "resolve_device": 1}


def test_validate_also_checks_the_loss_ranges(fast: TrainConfig) -> None:
    checks.check_settings(replace(fast, alpha=1.5))  # the loss's own range: not checked here
    with pytest.raises(ValueError, match="alpha"):
        validate(replace(fast, alpha=1.5))


def test_temporal_support_comes_from_the_registry(fast: TrainConfig) -> None:
    with pytest.raises(ValueError, match=r"supports the methods simclr, icon, rkdo and supcon, "
                                         r"not 'tsne'"):
        validate(replace(fast, method="tsne", recursion="temporal"))
    validate(replace(fast, method="supcon", recursion="temporal"))


def test_the_outside_baseline_is_refused_where_it_cannot_go(fast: TrainConfig) -> None:
    pytest.importorskip("lightly")
    with pytest.raises(ValueError, match="outside baseline: use --recursion none/auto"):
        validate(replace(fast, method="lightly-ntxent", recursion="in-step"))
    with pytest.raises(ValueError, match="--record-field needs one of rkdo's own methods"):
        validate(replace(fast, method="lightly-ntxent", record_field=16))
    validate(replace(fast, method="lightly-ntxent"))
