"""Tests for rkdo.bench.grid: grid files parse, refuse what is wrong, and hash their content."""

from __future__ import annotations

import pytest

from rkdo import bench


@pytest.mark.parametrize("text,message", [
    ("seeds=[0]\ndurations=[1]\nbogus=1", "unknown top-level key"),
    ("seeds=[0]\ndurations=[0]", "durations"),
    ("seeds=[0, 0]\ndurations=[1]", "duplicates"),
    ("seeds=[0]\ndurations=[1]\n[settings]\nseed=3", "set by the grid itself"),
    ("seeds=[0]\ndurations=[1]\n[settings]\nbatchsize=3", "unknown setting"),
    ("seeds=[0]\ndurations=[1]\n[settings]\nlr_schedule='cosine'", "constant learning rate"),
    ("seeds=[0]\ndurations=[1]\n[[datasets]]\ndataset='digits'", "at least one"),
    ("seeds=[0]\ndurations=[1]\ntreatment='x'\n[[datasets]]\ndataset='digits'\n"
     "[[methods]]\nname='icon'", "treatment 'x'"),
])
def test_bad_grids_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.parse_grid(text)


def test_grid_hash_ignores_layout_but_not_content() -> None:
    text = bench.load_grid("digits-smoke").text
    reformatted = "# a comment\n" + text.replace("seeds = [0, 1]", "seeds = [ 0,1 ]")
    assert bench.parse_grid(reformatted).hash == bench.parse_grid(text).hash
    assert bench.parse_grid(text.replace("seeds = [0, 1]", "seeds = [0, 2]")).hash != \
        bench.parse_grid(text).hash

