r"""MCNC: manifold-constrained reparameterisation of any ``nn.Module`` (arXiv 2406.19301).

The selected parameters are flattened (``named_parameters`` order, row-major) into :math:`\theta\in\mathbb
R^D`, cut into :math:`n=\lceil D/d\rceil` chunks of size d (the last one padded), and each chunk is

.. math:: \theta_t = \sum_{j\le m}\beta_{t,j}\,\phi(\alpha_{t,j}),\qquad \alpha_{t,j}\in\mathbb R^k,\
   \beta_{t,j}\in\mathbb R \quad(m = 1 \text{ by default}),

where :math:`\phi:\mathbb R^k\to S^{d-1}` is a frozen generator rebuilt from a seed (``"mcnc"``: a sine
MLP with normalised output, the spec's ``mcnc-gen/1``; ``"pranc"``: a linear random map, the PRANC-style
baseline). ``mode="residual"`` adds a frozen base: :math:`\theta = \theta_0 + \beta\phi(\alpha)`, β = 0 at
the start; ``mode="lora"`` generates LoRA factors for a frozen base, :math:`W = W_0 + (s/r)BA`. Only α and
β train; BatchNorm/LayerNorm parameters and buffers stay dense.

Built on ``torch.nn.utils.parametrize``: the user's module classes are not edited. The generator runs
once per forward over all chunks (one batched call); in eval mode without gradients the reconstruction
is cached until α or β change.

Modules: ``spec`` (:class:`MCNCSpec`, the seeded draws), ``generator`` (:class:`MCNCGenerator` and the
fused autograd Function), ``reparam`` (the store of α and β, :func:`wrap`, :func:`bake`,
:func:`param_groups`), ``state`` (:func:`compressed_state_dict`, :func:`load_compressed`) and
``diagnostics`` (:func:`report`, :func:`reconstruction_flops`, :func:`coverage`).
"""
from .generator import MCNCGenerator
from .reparam import bake, param_groups, wrap
from .diagnostics import coverage, reconstruction_flops, report
from .spec import MCNCSpec
from .state import compressed_state_dict, load_compressed

__all__ = ["MCNCSpec", "MCNCGenerator", "wrap", "bake", "compressed_state_dict", "load_compressed", "report",
           "reconstruction_flops", "coverage", "param_groups"]
