"""Where local data sets are looked for: an explicit path, then ``$NNBCD_DATA``, then a per-user cache
directory (``$XDG_CACHE_HOME/nnbcd`` or ``~/.cache/nnbcd``). Nothing is ever downloaded."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence


def candidate_roots(path: Optional[str] = None) -> List[Path]:
    """The directories searched, in order."""
    if path is not None:
        return [Path(path).expanduser()]
    roots = []
    if os.environ.get("NNBCD_DATA"):
        roots.append(Path(os.environ["NNBCD_DATA"]).expanduser())
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    roots.append(Path(cache) / "nnbcd")
    return roots


def find_dataset(name: str, subdirs: Sequence[str], required: Sequence[str], path: Optional[str],
                 layout: str) -> Path:
    """The first ``root`` or ``root/<subdir>`` holding every file of ``required`` (each may also exist
    with a ``.gz`` suffix); otherwise ``FileNotFoundError`` naming the paths searched and ``layout``."""
    searched = []
    for root in candidate_roots(path):
        for d in [root] + [root / s for s in subdirs]:
            searched.append(str(d))
            if all((d / f).is_file() or (d / (f + ".gz")).is_file() for f in required):
                return d
    hint = "pass path=..., set $NNBCD_DATA, or put the files in the cache directory"
    raise FileNotFoundError(
        f"{name} data not found; searched: {', '.join(searched)}. Expected layout:\n{layout}\n({hint})"
    )


def open_maybe_gz(path: Path, mode: str = "rb"):  # type: ignore[no-untyped-def]
    """Open ``path`` or, if absent, ``path.gz``."""
    import gzip

    if path.is_file():
        return open(path, mode)
    return gzip.open(str(path) + ".gz", mode)
