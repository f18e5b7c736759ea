"""scikit-learn's estimator conformance suite (``check_estimator``) on NNBCD, in small fast configurations.

No check is expected to fail: ``expected_failed_checks`` is empty. (``check_array_api_input`` skips
itself unless ``SCIPY_ARRAY_API=1``; NNBCD does not claim array-API support.)
"""
from sklearn.utils.estimator_checks import parametrize_with_checks

from nnbcd import NNBCD, Prune

ESTIMATORS = [
    NNBCD(hidden_layer_sizes=(8,), max_iter=5),
    # biases, single precision and the compiled kernels
    NNBCD(hidden_layer_sizes=(8,), max_iter=5, bias=True, dtype="float32", backend="numba"),
    # a compressed layer and thinned monitoring
    NNBCD(hidden_layer_sizes=(8, 6), max_iter=5, compress={1: Prune(0.5)}, tau=1.0, monitor_every=2),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: {})
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
