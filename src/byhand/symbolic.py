r"""The softmax family derived symbolically with SymPy, in index notation.

Every expression here is built from the same symbols: a logit vector
:math:`x_k` (an :class:`~sympy.IndexedBase` ``x``) of length :math:`n`, integer
indices :math:`i, j, k \in \{0, \dots, n-1\}`, a fixed target class :math:`y` and,
for results written in terms of probabilities, the names :math:`s_k` (an
:class:`~sympy.IndexedBase` ``s``). With

.. math::

   \begin{aligned}
   Z &= \sum_{k=0}^{n-1} e^{x_k}, & s_i &= \frac{e^{x_i}}{Z}, \\
   \ell_i &= x_i - \log Z, & L &= -\ell_y,
   \end{aligned}

SymPy differentiates an entry with respect to :math:`x_j`. It turns
:math:`\partial x_k/\partial x_j` into ``KroneckerDelta(j, k)``, and the sum over the
dummy index :math:`k` collapses (:func:`collapse_sums`), giving

.. math::

   \begin{aligned}
   \frac{\partial s_i}{\partial x_j} &= s_i(\delta_{ij} - s_j), \\
   \frac{\partial \ell_i}{\partial x_j} &= \delta_{ij} - s_j, \\
   \frac{\partial L}{\partial x_j} &= s_j - \delta_{jy}.
   \end{aligned}

Pass an integer ``n`` to get explicit expressions in :math:`x_0, \dots, x_{n-1}` and
explicit :class:`~sympy.Matrix` Jacobians instead of the general-:math:`n` entries.
:func:`evaluate` and :func:`evaluate_matrix` substitute numbers, so every result can
be compared with :mod:`byhand.softmax` and with autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
import torch
from torch import Tensor

from .symbolic_notation import INDICES, SYMBOLS, Symbols, distinct_dummies, to_latex

__all__ = [
    "SYMBOLS",
    "Symbols",
    "collapse_sums",
    "cross_entropy_expression",
    "cross_entropy_gradient_entry",
    "distinct_dummies",
    "entry_matrix",
    "evaluate",
    "evaluate_matrix",
    "in_terms_of_softmax",
    "log_softmax_expression",
    "log_softmax_jacobian_entry",
    "log_softmax_jacobian_matrix",
    "logits",
    "logsumexp_expression",
    "logsumexp_gradient_entry",
    "partition_function",
    "softmax_expression",
    "softmax_jacobian_entry",
    "softmax_jacobian_matrix",
    "softmax_jacobian_steps",
    "softmax_vector",
    "split_on_delta",
    "to_latex",
]




def logits(n: int) -> list[sp.Indexed]:
    r"""The explicit logits :math:`[x_0, \dots, x_{n-1}]`.

    Examples:
        >>> logits(3)
        [x[0], x[1], x[2]]
    """
    return [SYMBOLS.x[a] for a in range(n)]


def partition_function(n: int | None = None) -> sp.Expr:
    r""":math:`Z = \sum_{k=0}^{n-1} e^{x_k}`: a :class:`~sympy.Sum`, or an explicit sum for integer ``n``.

    Examples:
        >>> partition_function()
        Sum(exp(x[k]), (k, 0, C - 1))
        >>> partition_function(3)
        exp(x[0]) + exp(x[1]) + exp(x[2])
    """
    x, k = SYMBOLS.x, SYMBOLS.k
    if n is None:
        return sp.Sum(sp.exp(x[k]), (k, 0, SYMBOLS.n - 1))
    return sp.Add(*(sp.exp(xa) for xa in logits(n)))


def softmax_expression(index: sp.Expr | int | None = None, n: int | None = None) -> sp.Expr:
    r""":math:`s_i = e^{x_i} / Z`, for the index ``index`` (default :math:`i`).

    Examples:
        >>> softmax_expression()
        exp(x[i])/Sum(exp(x[k]), (k, 0, C - 1))
        >>> softmax_expression(0, n=2)
        exp(x[0])/(exp(x[0]) + exp(x[1]))
    """
    index = SYMBOLS.i if index is None else index
    return sp.exp(SYMBOLS.x[index]) / partition_function(n)


def logsumexp_expression(n: int | None = None) -> sp.Expr:
    r""":math:`\mathrm{lse}(x) = \log Z = \log \sum_k e^{x_k}`.

    Examples:
        >>> logsumexp_expression(2)
        log(exp(x[0]) + exp(x[1]))
        >>> round(evaluate(logsumexp_expression(2), [0.0, 0.0]), 6), round(float(sp.log(2)), 6)
        (0.693147, 0.693147)
    """
    return sp.log(partition_function(n))


def log_softmax_expression(index: sp.Expr | int | None = None, n: int | None = None) -> sp.Expr:
    r""":math:`\ell_i = \log s_i = x_i - \log Z`, for the index ``index`` (default :math:`i`).

    Examples:
        >>> log_softmax_expression()
        -log(Sum(exp(x[k]), (k, 0, C - 1))) + x[i]
    """
    index = SYMBOLS.i if index is None else index
    return SYMBOLS.x[index] - logsumexp_expression(n)


def cross_entropy_expression(target: sp.Expr | int | None = None, n: int | None = None) -> sp.Expr:
    r""":math:`L = -\log s_y = \log Z - x_y` for one sample of class ``target`` (default :math:`y`).

    Examples:
        >>> cross_entropy_expression()
        log(Sum(exp(x[k]), (k, 0, C - 1))) - x[y]
        >>> round(evaluate(cross_entropy_expression(0, n=3), [2.0, 1.0, 0.1]), 6)
        0.41703
    """
    target = SYMBOLS.y if target is None else target
    return -log_softmax_expression(target, n)


def _in_range(condition: sp.Basic) -> sp.Basic:
    """Decide ``condition`` knowing that every free index lies in ``0 .. n-1``."""
    free = [a for a in INDICES.values() if a in condition.free_symbols]
    if len(free) != 1 or SYMBOLS.n not in condition.free_symbols:
        return condition
    # index = p and n = p + 1 + m with p, m >= 0 is exactly "0 <= index <= n - 1".
    p, m = sp.symbols("p m", integer=True, nonnegative=True)
    return sp.simplify(condition.xreplace({free[0]: p, SYMBOLS.n: p + 1 + m}))


def _resolve(piecewise: sp.Piecewise) -> sp.Expr:
    for branch, condition in piecewise.args:
        decided = _in_range(condition)
        if decided == sp.true:
            return branch
        if decided != sp.false:
            return piecewise
    return piecewise


def _rename_dummy(total: sp.Sum) -> sp.Sum:
    (dummy, lower, upper), k = total.limits[0], SYMBOLS.k
    if len(total.limits) != 1 or dummy == k or k in total.function.free_symbols:
        return total
    # an inner sum over k that mentions the old dummy would capture it
    if any(k in inner.variables and dummy in inner.free_symbols
           for inner in total.function.atoms(sp.Sum)):
        return total
    return sp.Sum(total.function.xreplace({dummy: k}), (k, lower, upper))


def collapse_sums(expr: sp.Expr) -> sp.Expr:
    r"""Evaluate sums over Kronecker deltas, :math:`\sum_k a_k \delta_{jk} = a_j`.

    SymPy's ``doit`` returns the collapsed sum inside a ``Piecewise`` that asks
    whether :math:`j` lies in the summation range; every index of this module runs
    over :math:`0, \dots, n-1`, so the in-range branch is kept. Remaining sums get
    the dummy index :math:`k` where it is free to take, so that
    :math:`\sum_j e^{x_j}` and :math:`\sum_k e^{x_k}` are recognised as the same
    :math:`Z`.

    Examples:
        >>> k, j = SYMBOLS.k, SYMBOLS.j
        >>> total = sp.Sum(SYMBOLS.x[k] * sp.KroneckerDelta(j, k), (k, 0, SYMBOLS.n - 1))
        >>> collapse_sums(total)
        x[j]
    """
    collapsed = expr.doit()
    collapsed = collapsed.replace(lambda e: isinstance(e, sp.Piecewise), _resolve)
    return collapsed.replace(lambda e: isinstance(e, sp.Sum), _rename_dummy)


def in_terms_of_softmax(expr: sp.Expr, n: int | None = None) -> sp.Expr:
    r"""Rewrite every :math:`e^{x_a}` as :math:`s_a Z` and cancel :math:`Z`.

    The result uses the names :math:`s_a` (``SYMBOLS.s[a]``) instead of the
    exponentials; ``n`` must match the one the expression was built with.

    Examples:
        >>> in_terms_of_softmax(softmax_expression(0, n=2) * softmax_expression(1, n=2), n=2)
        s[0]*s[1]
    """
    z = sp.Dummy("Z", positive=True)
    replaced = expr.xreplace({partition_function(n): z})

    def exp_to_s(arg: sp.Expr) -> sp.Expr:
        out = sp.Integer(1)
        for term in sp.Add.make_args(sp.expand(arg)):
            coeff, rest = term.as_coeff_Mul()
            if isinstance(rest, sp.Indexed) and rest.base == SYMBOLS.x:
                out *= (SYMBOLS.s[rest.indices[0]] * z) ** coeff
            else:
                out *= sp.exp(term)
        return out

    replaced = replaced.replace(lambda e: isinstance(e, sp.exp), lambda e: exp_to_s(e.args[0]))
    return sp.factor(sp.simplify(replaced)).xreplace({z: partition_function(n)})


def _entry(expr: sp.Expr, softmax_names: bool) -> sp.Expr:
    derivative = sp.simplify(collapse_sums(sp.diff(expr, SYMBOLS.x[SYMBOLS.j])))
    return in_terms_of_softmax(derivative) if softmax_names else derivative


def softmax_jacobian_steps() -> dict[str, sp.Expr]:
    r"""The derivation of :math:`\partial s_i/\partial x_j` for general :math:`n`, step by step.

    Keys, in order: ``"softmax"`` (:math:`s_i = e^{x_i}/Z`), ``"derivative"`` (what
    ``diff`` returns: the quotient rule with :math:`\sum_k e^{x_k}\delta_{jk}` still
    inside), ``"collapsed"`` (the sum evaluated to :math:`e^{x_j}`), ``"factored"``
    (over the common denominator :math:`Z^2`) and ``"softmax names"``
    (:math:`s_i(\delta_{ij} - s_j)`).

    Examples:
        >>> steps = softmax_jacobian_steps()
        >>> list(steps)
        ['softmax', 'derivative', 'collapsed', 'factored', 'softmax names']
        >>> steps["softmax names"]
        (KroneckerDelta(i, j) - s[j])*s[i]
    """
    s_i = softmax_expression()
    derivative = sp.diff(s_i, SYMBOLS.x[SYMBOLS.j])
    collapsed = collapse_sums(derivative)
    return {
        "softmax": s_i,
        "derivative": derivative,
        "collapsed": collapsed,
        "factored": sp.factor(collapsed),
        "softmax names": in_terms_of_softmax(collapsed),
    }


def softmax_jacobian_entry(softmax_names: bool = False) -> sp.Expr:
    r""":math:`\partial s_i/\partial x_j` for general :math:`n`.

    In the logits (default) or, with ``softmax_names=True``, as
    :math:`s_i(\delta_{ij} - s_j)` in the names ``SYMBOLS.s``.

    Examples:
        >>> softmax_jacobian_entry(softmax_names=True)
        (KroneckerDelta(i, j) - s[j])*s[i]
    """
    return _entry(softmax_expression(), softmax_names)


def log_softmax_jacobian_entry(softmax_names: bool = False) -> sp.Expr:
    r""":math:`\partial \ell_i/\partial x_j = \delta_{ij} - s_j` for general :math:`n`.

    Examples:
        >>> log_softmax_jacobian_entry(softmax_names=True)
        KroneckerDelta(i, j) - s[j]
    """
    return _entry(log_softmax_expression(), softmax_names)


def logsumexp_gradient_entry(softmax_names: bool = False) -> sp.Expr:
    r""":math:`\partial \mathrm{lse}(x)/\partial x_j = s_j` for general :math:`n`.

    Examples:
        >>> logsumexp_gradient_entry(softmax_names=True)
        s[j]
    """
    return _entry(logsumexp_expression(), softmax_names)


def cross_entropy_gradient_entry(softmax_names: bool = False) -> sp.Expr:
    r""":math:`\partial(-\log s_y)/\partial x_j = s_j - \delta_{jy}` for general :math:`n`.

    :math:`y` is the fixed target class, not a summed index.

    Examples:
        >>> entry = cross_entropy_gradient_entry(softmax_names=True)
        >>> entry
        -KroneckerDelta(j, y) + s[j]
        >>> round(evaluate(entry, [2.0, 1.0, 0.1], j=0, y=0), 6)
        -0.340999
    """
    return _entry(cross_entropy_expression(), softmax_names)


def split_on_delta(entry: sp.Expr, first: sp.Symbol | None = None,
                   second: sp.Symbol | None = None) -> tuple[sp.Expr, sp.Expr]:
    r"""An entry in two indices as ``(diagonal, off_diagonal)``.

    On the diagonal (``second`` set to ``first``, default :math:`j \to i`)
    :math:`\delta_{ii} = 1`; off it :math:`\delta_{ij} = 0`. Two entries are equal for
    every :math:`i, j` exactly when both parts agree, which is how identities such as
    the symmetry :math:`J_{ij} = J_{ji}` are proved without choosing :math:`n`.

    Examples:
        >>> split_on_delta(softmax_jacobian_entry(softmax_names=True))
        ((1 - s[i])*s[i], -s[i]*s[j])
    """
    first = SYMBOLS.i if first is None else first
    second = SYMBOLS.j if second is None else second
    diagonal = sp.simplify(entry.xreplace({second: first}))
    off = sp.simplify(entry.replace(
        lambda e: isinstance(e, sp.KroneckerDelta) and set(e.args) == {first, second},
        lambda e: sp.Integer(0)))
    return diagonal, off


def softmax_vector(n: int) -> sp.Matrix:
    r"""The column :math:`(s_0, \dots, s_{n-1})^\top` written in the logits :math:`x_0, \dots, x_{n-1}`.

    Examples:
        >>> softmax_vector(2)
        Matrix([
        [exp(x[0])/(exp(x[0]) + exp(x[1]))],
        [exp(x[1])/(exp(x[0]) + exp(x[1]))]])
    """
    return sp.Matrix([softmax_expression(a, n) for a in range(n)])


def softmax_jacobian_matrix(n: int) -> sp.Matrix:
    r"""The explicit :math:`n \times n` Jacobian :math:`J_{ij} = \partial s_i/\partial x_j`.

    Examples:
        >>> J = softmax_jacobian_matrix(2)
        >>> J.shape
        (2, 2)
        >>> evaluate_matrix(J, [0.0, 0.0])
        tensor([[ 0.2500, -0.2500],
                [-0.2500,  0.2500]], dtype=torch.float64)
    """
    return softmax_vector(n).jacobian(logits(n))


def log_softmax_jacobian_matrix(n: int) -> sp.Matrix:
    r"""The explicit :math:`n \times n` Jacobian :math:`\partial \ell_i/\partial x_j`.

    Examples:
        >>> evaluate_matrix(log_softmax_jacobian_matrix(2), [0.0, 0.0])
        tensor([[ 0.5000, -0.5000],
                [-0.5000,  0.5000]], dtype=torch.float64)
    """
    ell = sp.Matrix([log_softmax_expression(a, n) for a in range(n)])
    return ell.jacobian(logits(n))


def entry_matrix(entry: sp.Expr, n: int) -> sp.Matrix:
    r"""The :math:`n \times n` matrix of a general-:math:`n` entry in :math:`i, j`, for a concrete ``n``.

    The sums over :math:`k` are expanded, so the result is written in
    :math:`x_0, \dots, x_{n-1}` (or :math:`s_0, \dots, s_{n-1}`) like
    :func:`softmax_jacobian_matrix`.

    Examples:
        >>> entry_matrix(softmax_jacobian_entry(softmax_names=True), 2)
        Matrix([
        [(1 - s[0])*s[0],      -s[0]*s[1]],
        [     -s[0]*s[1], (1 - s[1])*s[1]]])
    """
    def at(a: int, b: int) -> sp.Expr:
        return entry.xreplace({SYMBOLS.n: n, SYMBOLS.i: a, SYMBOLS.j: b}).doit()

    return sp.Matrix(n, n, lambda a, b: at(a, b))


def _numeric_substitutions(values: Sequence[float]) -> dict[sp.Basic, sp.Expr]:
    xs = [sp.Float(float(v), 30) for v in values]
    z = sp.Add(*(sp.exp(v) for v in xs))
    subs: dict[sp.Basic, sp.Expr] = {SYMBOLS.x[a]: v for a, v in enumerate(xs)}
    subs.update({SYMBOLS.s[a]: sp.exp(v) / z for a, v in enumerate(xs)})
    return subs


def evaluate(expr: sp.Expr, values: Sequence[float], **indices: int) -> float:
    r"""The value of ``expr`` at logits ``values`` (so :math:`n` = ``len(values)``).

    Indices are given by name, for example ``evaluate(entry, [1.0, 2.0], i=0, j=1)``;
    ``x`` and ``s`` entries are replaced by the numbers and their softmax.

    Examples:
        >>> entry = softmax_jacobian_entry(softmax_names=True)
        >>> evaluate(entry, [0.0, 0.0], i=0, j=0), evaluate(entry, [0.0, 0.0], i=0, j=1)
        (0.25, -0.25)
    """
    unknown = set(indices) - set(INDICES)
    if unknown:
        raise ValueError(f"unknown index names {sorted(unknown)}; use {sorted(INDICES)}")
    fixed = {INDICES[name]: sp.Integer(v) for name, v in indices.items()}
    concrete = expr.xreplace({SYMBOLS.n: len(values), **fixed}).doit()
    return float(concrete.xreplace(_numeric_substitutions(values)).evalf(30))


def evaluate_matrix(matrix: sp.Matrix, values: Sequence[float]) -> Tensor:
    """A symbolic matrix in ``x_a`` (or ``s_a``) at logits ``values``, as a float64 tensor.

    Examples:
        >>> from byhand.softmax import softmax_jacobian
        >>> ours = evaluate_matrix(softmax_jacobian_matrix(3), [2.0, 1.0, 0.1])
        >>> torch.allclose(ours, softmax_jacobian(torch.tensor([2.0, 1.0, 0.1], dtype=torch.float64)))
        True
    """
    subs = _numeric_substitutions(values)
    numbers = [[float(entry.xreplace(subs).evalf(30)) for entry in row]
               for row in matrix.tolist()]
    return torch.tensor(numbers, dtype=torch.float64)
