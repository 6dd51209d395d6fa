"""What the compiled core says about its own build, and ``eqprop info``.

These run against whatever build is installed (OpenMP or serial, a local build
or a repaired wheel), so each check compares two reports of the same fact
rather than expecting one particular build.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import eqcore
import eqprop
from eqprop import cli


def test_build_info_keys_and_types():
    info = eqcore.build_info()
    assert {"openmp", "max_threads", "native", "blas"} <= set(info)
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["native"], bool)
    assert isinstance(info["max_threads"], int) and info["max_threads"] >= 1
    assert isinstance(info["blas"], list)
    for entry in info["blas"]:
        assert isinstance(entry, dict)
        assert {"library", "version", "threading", "architecture", "path"} <= set(entry)


def test_build_info_agrees_with_the_core_functions():
    info = eqcore.build_info()
    assert info["openmp"] is eqcore.openmp_enabled()
    assert info["native"] is eqcore.native_build()
    assert info["max_threads"] == eqcore.max_threads()


def test_serial_build_runs_on_one_thread():
    # Without OpenMP the core's stand-ins must say 1, whatever the machine has.
    if eqcore.openmp_enabled():
        assert eqcore.num_procs() >= 1
    else:
        assert eqcore.max_threads() == 1
        assert eqcore.num_procs() == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SciPy may use Accelerate elsewhere")
def test_build_info_finds_scipys_blas():
    # eqcore calls BLAS through scipy.linalg.cython_blas, so SciPy's BLAS is loaded.
    assert eqcore.build_info()["blas"], "no BLAS library found in this process"


def _expected_openmp_line() -> str:
    return "OpenMP: enabled" if eqcore.openmp_enabled() else "OpenMP: DISABLED (serial build)"


def test_info_command_reports_the_build(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"eqprop {eqprop.__version__}"
    assert _expected_openmp_line() in lines
    assert f"max threads: {eqcore.max_threads()}" in lines
    assert f"built with -march=native: {'yes' if eqcore.native_build() else 'no'}" in lines


def test_info_command_in_a_fresh_process():
    # The same report from a new interpreter, as a user would run it.
    result = subprocess.run(
        [sys.executable, "-m", "eqprop.cli", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert _expected_openmp_line() in result.stdout.splitlines()


def test_console_script_is_installed_and_runs():
    script = Path(sysconfig.get_path("scripts")) / "eqprop"
    if not script.exists():
        pytest.skip(f"no eqprop console script in {script.parent} (not a pip install?)")
    result = subprocess.run([str(script), "info"], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.startswith(f"eqprop {eqprop.__version__}\n")
    assert _expected_openmp_line() in result.stdout.splitlines()


def test_kernel_in_use_is_reported(capsys):
    import eqcore
    from eqprop import cli

    kernel = eqcore.build_info()["kernel"]
    assert kernel["path"] in ("skinny", "blas")
    assert kernel["isa"] in ("avx512", "avx2", "portable")
    assert cli.main(["info"]) == 0
    assert f"relaxation kernel: {kernel['path']} ({kernel['isa']})" in capsys.readouterr().out


def test_sparse_input_threshold_is_reported(capsys):
    import eqcore
    from eqprop import cli

    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    eqcore.set_sparse_threshold(0.25, update=0.4)
    try:
        assert eqcore.build_info()["sparse_input_density"] == 0.25
        assert eqcore.build_info()["sparse_update_density"] == 0.4
        assert cli.main(["info"]) == 0
    finally:
        eqcore.set_sparse_threshold(*before)
    assert ("sparse input products: for inputs with at most 25% non-zero entries (the update of W_0: 40%)"
            in capsys.readouterr().out)


@pytest.mark.parametrize("threshold, line", [
    (0.125, "the states' changes sent through the weights, per row when at most 12% of its entries changed"),
    (0.0, "event-driven relaxation (dense chains): off"),
])
def test_event_driven_threshold_is_reported(capsys, threshold, line):
    import eqcore
    from eqprop import cli

    before = eqcore.delta_threshold()
    eqcore.set_delta_threshold(threshold)
    try:
        assert cli.main(["info"]) == 0
    finally:
        eqcore.set_delta_threshold(before)
    assert line in capsys.readouterr().out


@pytest.mark.parametrize("user_env, expected", [
    ({}, ("ACTIVE", "3000000")),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, ("PASSIVE", None)),
    ({"GOMP_SPINCOUNT": "1000"}, (None, "1000")),
])
def test_openmp_threads_spin_between_regions_unless_the_user_chose(user_env, expected):
    """eqcore sets a bounded spin before libgomp loads, and leaves a user's own choice alone."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(user_env)
    code = ("import os, eqcore; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(v) for v in expected]
