"""The scripts' timing helpers, kept under this name for the scripts that import it: the implementation is
:mod:`nnbcd.bench.timing` (one implementation, shared with ``nnbcd bench``)."""
from nnbcd.bench.timing import median_time, write_result

__all__ = ["median_time", "write_result"]
