"""Backend-agnostic math: pure functions on arrays (ReLU prox, TT-SVD, top-k, EVBMF, im2col)."""
