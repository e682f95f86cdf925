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



_ENTRIES = ("[[datasets]]\ndataset = 'digits'\n", "[[methods]]\nname = 'icon'\n")


@pytest.mark.parametrize("line,message", [
    ("settings = 5", r"'settings' must be a table \(\[settings\].*got 5 \(int\)"),
    ("datasets = [1, 2]", r"'datasets' must be an array of tables \(\[\[datasets\]\]"),
    ("datasets = 'x'", r"'datasets' must be an array of tables.*got 'x' \(str\)"),
    ("methods = 'x'", r"'methods' must be an array of tables"),
    ("profile = 'no'", r"'profile' must be true or false, got 'no'"),
    ("profile_steps = true", r"'profile_steps' must be an integer, got True"),
    ("name = 5", r"'name' must be a string"),
    ("resources = 4", r"'resources' must be a table"),
])
def test_tables_of_the_wrong_type_are_refused_before_anything(tmp_path, line: str,
                                                              message: str) -> None:
    """The issue's grid files on disk: raw TypeErrors before, and profile = "no" read as true."""
    key = line.split()[0]
    entries = "".join(entry for entry in _ENTRIES if not entry.startswith(f"[[{key}]]"))
    path = tmp_path / "grid.toml"
    path.write_text(f"seeds = [0]\ndurations = [1]\n{line}\n{entries}\n")
    with pytest.raises(ValueError, match=message) as error:
        bench.load_grid(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize("entry,message", [
    ("[[datasets]]\ndataset = 5\n[[methods]]\nname = 'icon'",
     r"\[\[datasets\]\] entry 1: dataset must be a string"),
    ("[[datasets]]\ndataset = 'digits'\n[[methods]]\nname = 'icon'\noptional = 'no'",
     r"\[\[methods\]\] entry 1: optional must be true or false"),
])
def test_entries_of_the_wrong_type_are_refused(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.parse_grid(f"seeds = [0]\ndurations = [1]\n{entry}\n")
