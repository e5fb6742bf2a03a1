"""byhand: the softmax, cross-entropy and NLL backward, derived and written by hand.

The public API mirrors :mod:`torch.nn.functional`: ``byhand.cross_entropy`` and
``byhand.nll_loss`` are differentiable drop-ins whose backward is ours; the pure
forward and ``*_backward`` functions live in :mod:`byhand.softmax` and
:mod:`byhand.losses`.

Examples:
    >>> import torch, byhand
    >>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
    >>> byhand.cross_entropy(x, torch.tensor([0, 1])).backward()
    >>> x.grad
    tensor([[-0.1705,  0.1212,  0.0493],
            [ 0.0543, -0.0988,  0.0445]])
    >>> byhand.cross_entropy_backward(torch.tensor(1.0), x.detach(), torch.tensor([0, 1])).equal(x.grad)
    True
"""

from .autograd import cross_entropy, nll_loss
from .check import assert_close, check_backward, compare, numerical_gradient
from .cross_entropy_core import CrossEntropyOptions
from .data import load_mnist
from .device import pick_device
from .distributed import DataParallelStep, all_reduce_gradients, global_cross_entropy
from .layers import mlp
from .linear_cross_entropy import (
    linear_cross_entropy,
    linear_cross_entropy_backward,
    linear_cross_entropy_forward_backward,
    online_logsumexp,
)
from .losses import (
    cross_entropy_backward,
    cross_entropy_forward_backward,
    nll_loss_backward,
)
from .mse import mse_loss, mse_loss_backward
from .softmax import (
    log_softmax,
    log_softmax_backward,
    logsumexp,
    logsumexp_backward,
    softmax,
    softmax_backward,
    softmax_jacobian,
)
from .train import TrainConfig, fit

__version__ = "0.1.0"

__all__ = [
    "CrossEntropyOptions",
    "DataParallelStep",
    "TrainConfig",
    "all_reduce_gradients",
    "assert_close",
    "check_backward",
    "compare",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_forward_backward",
    "fit",
    "global_cross_entropy",
    "linear_cross_entropy",
    "linear_cross_entropy_backward",
    "linear_cross_entropy_forward_backward",
    "load_mnist",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "mlp",
    "mse_loss",
    "mse_loss_backward",
    "nll_loss",
    "nll_loss_backward",
    "numerical_gradient",
    "online_logsumexp",
    "pick_device",
    "softmax",
    "softmax_backward",
    "softmax_jacobian",
]
