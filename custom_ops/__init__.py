"""Custom ops: upfirdn2d and bias_act, each a PyTorch reference plus a CUDA kernel built on first use.

Imports nothing of the rest of the project, so the networks can depend on it and not the reverse.
"""

from .bias_act import ACTIVATIONS, bias_act, bias_act_ref
from .conv2d_resample import conv2d_resample, conv2d_resample_ref
from .dispatch import requested_impl, status
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upfirdn2d_ref, upsample2d

__all__ = [
    "ACTIVATIONS",
    "bias_act",
    "bias_act_ref",
    "conv2d_resample",
    "conv2d_resample_ref",
    "downsample2d",
    "filter2d",
    "requested_impl",
    "setup_filter",
    "status",
    "upfirdn2d",
    "upfirdn2d_ref",
    "upsample2d",
]
