"""The measurement tools that other tools and the docs' figures rely on."""

import importlib.util
from pathlib import Path

import pytest

from conftest import shared_data_dir

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("spec, message", [("main", "NAME=SRC"), ("=src", "NAME=SRC"), ("a=", "NAME=SRC"),
                                           ("a=/nonexistent-eqprop-build", "no eqcore package")])
def test_alternate_speed_refuses_a_bad_build_in_one_line(spec, message, capsys):
    alternate = load_tool("alternate_speed")
    assert alternate.main(["1", spec]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_alternate_speed_needs_rounds_and_a_build(capsys):
    alternate = load_tool("alternate_speed")
    assert alternate.main(["x", "a=src"]) == 2
    assert alternate.main(["2"]) == 2


def test_alternate_speed_runs_each_build_each_round(capsys, monkeypatch):
    data = shared_data_dir()
    if data is None or not (data / "mnist").exists():
        pytest.skip("MNIST is not available (EQPROP_DATA)")
    monkeypatch.setenv("EQPROP_DATA", str(data))
    alternate = load_tool("alternate_speed")
    src = Path(__import__("eqcore").__file__).resolve().parent.parent
    code = alternate.main(["2", f"one={src}", f"two={src}", "--", "--examples", "400", "--epochs", "1",
                           "--threads", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert [line.split()[0] for line in lines[:4]] == ["one", "two", "one", "two"]
    assert all("examples/s" in line and "free" in line for line in lines[:4])
    assert lines[4].startswith("one median") and lines[5].startswith("two median")
    assert lines[6].startswith("two / one: median ") and lines[6].endswith(" of 2")


def test_alternate_speed_pairs_each_round():
    alternate = load_tool("alternate_speed")
    base = [{"examples/s": 100.0}, {"examples/s": 60.0}, {"examples/s": 100.0}]
    other = [{"examples/s": 102.0}, {"examples/s": 63.0}, {"examples/s": 98.0}]
    assert alternate.round_ratios(base, other) == pytest.approx([1.02, 1.05, 0.98])
