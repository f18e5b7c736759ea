"""The W/V blocks' Cholesky factorisations run on one BLAS thread when the thread policy gives them one."""
import pytest

from nnbcd.backend.threads import factor_threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads():
    return {m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"}


def test_small_factorisation_gets_one_thread_and_restores(monkeypatch):
    monkeypatch.setattr("nnbcd.backend.threads.usable_cores", lambda: 2)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        outer = _blas_threads()
        with factor_threads(1024):  # 3.6e8 FLOPs < 1e9: one thread
            assert _blas_threads() == {1}
        assert _blas_threads() == outer
        with factor_threads(5408):  # 5.3e10 FLOPs: the enclosing limit stays
            assert _blas_threads() == outer
