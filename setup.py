"""Build the compiled core ``eqcore`` (Cython + OpenMP).

Environment variables (all optional):

``EQPROP_NATIVE=1``
    Add ``-march=native`` for a local build tuned to this CPU. Never set it when
    building wheels that other machines will install.
``EQPROP_OPENMP=0``
    Build the serial core even where the compiler supports OpenMP.
``EQPROP_OPENMP_FLAGS="-Xpreprocessor -fopenmp -lomp"``
    Compiler/linker flags for OpenMP when ``-fopenmp`` is not the right spelling
    (Apple clang with Homebrew's libomp, for instance).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
CORE_DIR = HERE / "src" / "eqcore"
TRUTHY = {"1", "true", "yes", "on"}

OPENMP_TEST_PROGRAM = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n > 0 ? 0 : 1;
}
"""


def _env_flag(name: str, default: str = "") -> bool:
    return os.environ.get(name, default).strip().lower() in TRUTHY


def _warn(message: str) -> None:
    """Print a build warning on stderr.

    Not ``warnings.warn``: recent pip captures a build backend's warnings and
    logs them at debug level, so a serial build would pass unnoticed.
    """
    print(f"WARNING (eqprop setup.py): {message}", file=sys.stderr, flush=True)


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def detect_openmp_flags() -> list[str]:
    """Return the OpenMP flags the compiler accepts, or [] for a serial build.

    The test program is compiled, linked and run, so a compiler that accepts
    ``-fopenmp`` but has no runtime library does not pass.
    """
    if os.environ.get("EQPROP_OPENMP", "1").strip().lower() in {"0", "false", "no", "off"}:
        _warn("EQPROP_OPENMP=0: building the serial eqcore")
        return []
    candidates = []
    if os.environ.get("EQPROP_OPENMP_FLAGS"):
        candidates.append(shlex.split(os.environ["EQPROP_OPENMP_FLAGS"]))
    candidates.append(["-fopenmp"])
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "omp_test.c"
        binary = Path(tmp) / "omp_test"
        source.write_text(OPENMP_TEST_PROGRAM)
        for flags in candidates:
            command = [*_compiler(), str(source), "-o", str(binary), *flags]
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=120)
                subprocess.run([str(binary)], check=True, capture_output=True, timeout=60)
            except (OSError, subprocess.SubprocessError):
                continue
            return flags
    _warn(
        "The C compiler does not support OpenMP: eqcore is built serially "
        "(correct, but uses one core). Set EQPROP_OPENMP_FLAGS to enable it."
    )
    return []


def split_openmp_flags(flags: list[str]) -> tuple[list[str], list[str]]:
    """Split OpenMP flags into (compile flags, link flags).

    ``-Xpreprocessor X`` and ``-I`` only compile: Apple clang refuses a bare
    ``-fopenmp`` at link time as well, so ``X`` must not reach the linker on
    its own. ``-l``, ``-L`` and ``-Wl,`` only link. Anything else (gcc's
    ``-fopenmp``) goes to both.
    """
    compile_flags: list[str] = []
    link_flags: list[str] = []
    i = 0
    while i < len(flags):
        flag = flags[i]
        if flag == "-Xpreprocessor" and i + 1 < len(flags):
            compile_flags += flags[i : i + 2]
            i += 2
            continue
        if flag.startswith(("-l", "-L", "-Wl,")):
            link_flags.append(flag)
        elif flag.startswith("-I"):
            compile_flags.append(flag)
        else:
            compile_flags.append(flag)
            link_flags.append(flag)
        i += 1
    return compile_flags, link_flags


def build_extensions() -> list[Extension]:
    openmp_flags = detect_openmp_flags()
    compile_args = ["-O3", "-ffp-contract=fast"]
    if _env_flag("EQPROP_NATIVE"):
        compile_args.append("-march=native")
    macros = [
        ("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
        ("EQCORE_NATIVE", "1" if _env_flag("EQPROP_NATIVE") else "0"),
    ]
    compile_flags, link_flags = split_openmp_flags(openmp_flags)
    # the kernels' headers: a change to one rebuilds every module (build_ext compares times)
    headers = [str(header.relative_to(HERE)) for header in sorted(CORE_DIR.glob("*.h"))]
    extensions = []
    for pyx in sorted(CORE_DIR.glob("*.pyx")):
        extensions.append(
            Extension(
                f"eqcore.{pyx.stem}",
                [str(pyx.relative_to(HERE))],
                include_dirs=[numpy.get_include(), str(CORE_DIR.relative_to(HERE))],
                depends=headers,
                define_macros=macros,
                extra_compile_args=compile_args + compile_flags,
                extra_link_args=link_flags,
            )
        )
    return cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        annotate=_env_flag("EQPROP_ANNOTATE"),
    )


setup(ext_modules=build_extensions())
