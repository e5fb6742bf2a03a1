r"""Evaluate a classifier: logits in chunks, mean cross-entropy and accuracy, confusion matrix.

.. math::

   \begin{aligned}
   L &= -\frac{1}{N}\sum_n \log s_{n y_n}, \\
   \hat y_n &= \arg\max_c z_{nc}, \\
   \text{accuracy} &= \frac{1}{N}\sum_n \big[\hat y_n = y_n\big].
   \end{aligned}
"""

from __future__ import annotations

import torch
from torch import Tensor

from .layers import Layer
from .losses import cross_entropy

__all__ = ["confusion_matrix", "evaluate", "predict"]


def predict(model: Layer | torch.nn.Module, x: Tensor, batch_size: int = 10_000) -> Tensor:
    """The logits of ``model`` for every row of ``x``, ``batch_size`` rows at a time.

    ``model`` is a hand-written layer or a ``torch.nn.Module`` (run without recording
    a graph).

    Examples:
        >>> from byhand.layers import mlp, torch_mlp
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
        >>> logits = predict(model, x, batch_size=2)
        >>> logits.shape, torch.allclose(logits, model(x))
        (torch.Size([5, 2]), True)
        >>> predict(torch_mlp(model), x).requires_grad
        False
    """
    with torch.no_grad():
        chunks = x.split(batch_size)  # type: ignore[no-untyped-call]  # unannotated in torch
        return torch.cat([model.forward(chunk) for chunk in chunks])


def evaluate(
    model: Layer | torch.nn.Module, x: Tensor, y: Tensor, batch_size: int = 10_000
) -> tuple[float, float]:
    r"""Mean cross-entropy and accuracy on ``(x, y)``.

    .. math::

       \begin{aligned}
       L &= -\frac{1}{N}\sum_n \log s_{n y_n}, \\
       \hat y_n &= \arg\max_c z_{nc}, \\
       \text{accuracy} &= \frac{1}{N}\sum_n \big[\hat y_n = y_n\big].
       \end{aligned}

    Examples:
        >>> from byhand.layers import mlp
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> loss, accuracy = evaluate(model, x, torch.arange(8) % 2)
        >>> round(loss, 4), accuracy
        (0.7628, 0.5)
    """
    logits = predict(model, x, batch_size)
    loss = cross_entropy(logits, y, reduction="mean")
    accuracy = (logits.argmax(1) == y).to(torch.float64).mean()
    return float(loss), float(accuracy)


def confusion_matrix(predicted: Tensor, target: Tensor, n_classes: int = 10) -> Tensor:
    """``M[t, p]``: how many rows of true class ``t`` were predicted as ``p`` (int64, on the CPU).

    Examples:
        >>> confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), n_classes=3)
        tensor([[1, 0, 0],
                [0, 1, 0],
                [0, 1, 1]])
    """
    pairs = target.to("cpu", torch.int64) * n_classes + predicted.to("cpu", torch.int64)
    return torch.bincount(pairs, minlength=n_classes * n_classes).view(n_classes, n_classes)
