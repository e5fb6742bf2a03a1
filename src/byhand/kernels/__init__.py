r"""GPU kernels written by hand in Triton; an optional part of ``byhand``.

``pip install 'byhand[triton]'`` adds Triton. Importing this package does not import Triton:
the first call that runs a kernel does. :func:`cross_entropy` is a drop-in for
:func:`torch.nn.functional.cross_entropy` whose forward and backward are one kernel
(derived in the book's chapter "The backward in one kernel"); it runs on CUDA tensors, and on
CPU tensors in Triton's interpreter when ``TRITON_INTERPRET=1`` is set before Triton is
first imported.
"""

from .cross_entropy import (
    KernelUnavailableError,
    check_options,
    cross_entropy,
    cross_entropy_forward_backward,
    default_block_size,
)

__all__ = [
    "KernelUnavailableError",
    "check_options",
    "cross_entropy",
    "cross_entropy_forward_backward",
    "default_block_size",
]
