"""Compiling generated C kernels with the system compiler, cached on disk by the hash of their source.

The compiler is ``$CC`` or the first of ``cc``, ``gcc``, ``clang`` on the ``PATH``; OpenMP is used
when the compiler accepts ``-fopenmp``. Libraries are cached under ``$DMG_KERNEL_CACHE``, else
``$XDG_CACHE_HOME/dmg/kernels``, else ``~/.cache/dmg/kernels``, keyed by the source, the compiler,
its flags and the machine, so a second process (or run) loads a kernel without compiling it. A
library is written under a temporary name and renamed, so concurrent processes never load a
half-written file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BASE_FLAGS = ("-O3", "-march=native", "-fPIC", "-std=c11", "-fno-tree-pre")
"""Flags of every kernel. ``-fno-tree-pre`` keeps the backward loop vectorisable."""
FAST_MATH = ("-ffast-math",)
"""Added at compile time (never at link time, which would change floating-point modes process-wide)."""
VECTOR_MATH = ("-DDMG_VECTOR_MATH", "-fno-math-errno")
"""Declare the C library's math functions vectorisable (see :func:`dmg.core.engine.ccode.kernel_source`);
linked against the vector math library ``libmvec`` (up to 4 ulp), with IEEE semantics otherwise kept."""
VECTOR_MATH_LINK = ("-lmvec", "-Wl,-z,defs")


class CompilerError(RuntimeError):
    """No working C compiler was found; the message says what was tried."""


@dataclass(frozen=True)
class Compiler:
    """A C compiler and whether it builds OpenMP code."""

    path: str
    version: str
    openmp: bool


@functools.cache
def find_compiler() -> Compiler:
    """The C compiler kernels are built with (see the module docstring)."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    tried = []
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            tried.append(f"{name} (not found)")
            continue
        try:
            version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            tried.append(f"{name} ({exc})")
            continue
        return Compiler(path, version.splitlines()[0] if version else "?", _accepts_openmp(path))
    raise CompilerError(f"no C compiler found (tried {', '.join(tried)}); set CC or install gcc")


def _accepts_openmp(path: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("#include <omp.h>\nint probe(void) { return omp_get_max_threads(); }\n")
        result = subprocess.run(
            [path, "-fopenmp", "-shared", "-fPIC", str(source), "-o", str(Path(tmp) / "probe.so")],
            capture_output=True,
            timeout=60,
        )
        return result.returncode == 0


def cache_dir() -> Path:
    """Folder of the compiled kernels."""
    if os.environ.get("DMG_KERNEL_CACHE"):
        return Path(os.environ["DMG_KERNEL_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dmg" / "kernels"


@functools.cache
def _machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                cpu += line
    except OSError:
        pass
    return f"{platform.machine()} {platform.system()} {hashlib.sha256(cpu.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Built:
    """A loaded kernel library and what building it cost."""

    library: ctypes.CDLL
    path: Path
    seconds: float
    cached: bool


def build(source: str, *, fast_math: bool = False, vector_math: bool = True) -> Built:
    """Compile ``source`` into a shared library (or load it from the cache) and load it.

    With ``vector_math``, math functions vectorise against the C library's vector math library where
    there is one; where linking against it fails, the kernel is built without it.
    """
    if vector_math:
        try:
            return _build(source, VECTOR_MATH if not fast_math else (), VECTOR_MATH_LINK, fast_math)
        except CompilerError:
            pass
    return _build(source, (), (), fast_math)


def _build(source: str, extra: tuple[str, ...], link: tuple[str, ...], fast_math: bool) -> Built:
    compiler = find_compiler()
    flags = list(BASE_FLAGS) + (["-fopenmp"] if compiler.openmp else [])
    compile_flags = flags + list(extra) + (list(FAST_MATH) if fast_math else [])
    link_flags = flags + list(link)
    key = hashlib.sha256(
        "\n".join(
            [source, compiler.path, compiler.version, " ".join(compile_flags), " ".join(link_flags), _machine()]
        ).encode()
    ).hexdigest()[:32]
    folder = cache_dir()
    library = folder / f"dmg_kernel_{key}.so"
    start = time.perf_counter()
    cached = library.is_file()
    if not cached:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            c_file = Path(tmp) / "kernel.c"
            o_file = Path(tmp) / "kernel.o"
            so_file = Path(tmp) / "kernel.so"
            c_file.write_text(source)
            _run([compiler.path, *compile_flags, "-c", str(c_file), "-o", str(o_file)])
            _run([compiler.path, *link_flags, "-shared", str(o_file), "-o", str(so_file), "-lm"])
            os.replace(so_file, library)
    loaded = ctypes.CDLL(str(library))
    return Built(loaded, library, time.perf_counter() - start, cached)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise CompilerError(f"compiling a kernel failed ({' '.join(command[:2])} ...): {result.stderr[-2000:]}")
