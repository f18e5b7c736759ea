"""The machine a report was measured on: what anyone needs to compare two reports."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..backend.threads import usable_cores

#: distributions whose versions a report records (None when not installed)
LIBRARIES = ("nnbcd", "numpy", "scipy", "numba", "numba-cuda", "cupy-cuda12x", "cupy-cuda11x", "cupy", "torch",
             "tensorly", "scikit-learn", "threadpoolctl", "matplotlib")
#: environment variables that change thread counts or BLAS kernels
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "OPENBLAS_CORETYPE")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def blas_pools() -> List[Dict[str, Any]]:
    """The thread pools loaded in this process (threadpoolctl): BLAS libraries and OpenMP runtimes.

    Returns
    -------
    list of dict
        ``user_api`` ("blas" / "openmp"), ``internal_api`` (openblas, mkl, blis, ...), ``version``,
        ``num_threads``, ``architecture`` (the kernel set OpenBLAS picked) and the library's file name.
    """
    from threadpoolctl import threadpool_info

    return [{"user_api": p.get("user_api"), "internal_api": p.get("internal_api"), "version": p.get("version"),
             "num_threads": p.get("num_threads"), "architecture": p.get("architecture"),
             "library": Path(p["filepath"]).name} for p in threadpool_info()]


def gpu_info() -> Dict[str, Any]:
    """The first CUDA device as CuPy sees it, or why there is none.

    Returns
    -------
    dict
        ``available``; when true ``name``, ``memory_gib``, ``compute_capability``, ``driver`` and
        ``runtime`` (CUDA versions as "major.minor"), ``cupy`` (version); else ``reason``.
    """
    try:
        import cupy
    except ImportError:
        return {"available": False, "reason": "CuPy is not installed (pip install 'nnbcd[gpu]')"}
    try:
        rt = cupy.cuda.runtime
        if rt.getDeviceCount() < 1:
            return {"available": False, "reason": "CuPy is installed but no CUDA device was found"}
        props = rt.getDeviceProperties(0)
        name = props["name"]
        return {"available": True, "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_gib": round(props["totalGlobalMem"] / 2 ** 30, 1),
                "compute_capability": f"{props['major']}.{props['minor']}",
                "devices": rt.getDeviceCount(), "driver": _cuda_version(rt.driverGetVersion()),
                "runtime": _cuda_version(rt.runtimeGetVersion()), "cupy": cupy.__version__}
    except Exception as exc:  # a broken driver or runtime: recorded, not fatal to the report
        return {"available": False, "reason": f"no usable CUDA device ({exc})"}


def _cuda_version(v: int) -> str:
    # CUDA encodes versions as 1000 * major + 10 * minor
    return f"{v // 1000}.{(v % 1000) // 10}"


def library_versions() -> Dict[str, Optional[str]]:
    """Installed versions of :data:`LIBRARIES` (from package metadata: nothing is imported)."""
    out: Dict[str, Optional[str]] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> Dict[str, Any]:
    """Everything about this machine that a benchmark's numbers depend on.

    Returns
    -------
    dict
        ``cpu`` (model, logical cores, cores usable by this process, ``load_1min``: the 1-minute load
        average now, which counts other work on the machine),
        ``blas`` (:func:`blas_pools`; call after the backends are loaded so that their BLAS shows),
        ``numba_threads`` and ``numba_threading_layer``, ``gpu`` (:func:`gpu_info`), ``env`` (the thread
        variables of :data:`THREAD_ENV`), ``platform``, ``python`` and ``versions``
        (:func:`library_versions`).
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    info: Dict[str, Any] = {
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
                "load_1min": load},
        "blas": blas_pools(),
        "gpu": gpu_info(),
        "env": {k: os.environ.get(k) for k in THREAD_ENV},
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": library_versions(),
    }
    try:
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba_threading_layer"] = numba.config.THREADING_LAYER
    except ImportError:  # the numba backend is then absent and reported so
        pass
    return info


def describe(machine: Dict[str, Any]) -> List[str]:
    """One line each for the CPU, the BLAS pools, the GPU and the key library versions.

    Parameters
    ----------
    machine : dict
        As :func:`machine_info` returns it (or a report's ``machine``).

    Returns
    -------
    list of str
    """
    cpu = machine["cpu"]
    load = ", ".join(f"{cpu[k]:.2f} {when}" for k, when in (("load_1min_start", "at the start"),
                                                             ("load_1min", "at the end")) if cpu.get(k) is not None)
    lines = [f"CPU: {cpu['model']}, {cpu['logical_cores']} logical cores ({cpu['usable_cores']} usable)"
             + (f"; 1-minute load average {load}" if load else "")]
    blas = [f"{p['internal_api']} {p['version']} ({p['architecture']}, {p['num_threads']} threads, {p['library']})"
            for p in machine["blas"] if p["user_api"] == "blas"]
    lines.append("BLAS: " + ("; ".join(blas) or "none loaded"))
    gpu = machine["gpu"]
    lines.append(f"GPU: {gpu['name']} ({gpu['memory_gib']} GiB, compute {gpu['compute_capability']}), "
                 f"driver CUDA {gpu['driver']}, runtime CUDA {gpu['runtime']}, CuPy {gpu['cupy']}"
                 if gpu["available"] else f"GPU: none ({gpu['reason']})")
    versions = machine["versions"]
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
                 + f"; Python {machine['python']}")
    return lines
