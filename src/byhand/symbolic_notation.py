r"""The symbols of the book's index notation, and how its expressions print.

One set of SymPy symbols serves every derivation (:data:`SYMBOLS`): logits
:math:`x_k`, probabilities :math:`s_k`, the number of classes :math:`C` and integer
indices :math:`i, j, k, y \ge 0`. :func:`to_latex` prints an expression as the book
writes it, after :func:`distinct_dummies` has given nested sums distinct dummy
indices. :mod:`byhand.symbolic` builds the derivations on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["INDICES", "SYMBOLS", "Symbols", "distinct_dummies", "index_symbol", "to_latex"]


@dataclass(frozen=True)
class Symbols:
    """The symbols every expression of this module is written in.

    Examples:
        >>> SYMBOLS.n, SYMBOLS.x[SYMBOLS.i], SYMBOLS.s[SYMBOLS.j]
        (C, x[i], s[j])
        >>> SYMBOLS.i.is_integer, SYMBOLS.i.is_nonnegative
        (True, True)
    """

    n: sp.Symbol
    x: sp.IndexedBase
    s: sp.IndexedBase
    i: sp.Symbol
    j: sp.Symbol
    k: sp.Symbol
    y: sp.Symbol


def index_symbol(name: str) -> sp.Symbol:
    """An index: a SymPy integer :math:`\\ge 0` named ``name``.

    Examples:
        >>> index_symbol("i").is_integer, index_symbol("i").is_nonnegative
        (True, True)
    """
    return sp.Symbol(name, integer=True, nonnegative=True)


SYMBOLS = Symbols(
    n=sp.Symbol("C", integer=True, positive=True),
    x=sp.IndexedBase("x", real=True),
    s=sp.IndexedBase("s", positive=True),
    i=index_symbol("i"),
    j=index_symbol("j"),
    k=index_symbol("k"),
    y=index_symbol("y"),
)
"""The logits ``x``, probabilities ``s``, length ``n`` and indices ``i, j, k, y``.

The length is the book's number of classes and prints as :math:`C`; it keeps the
attribute name ``n``.
"""

INDICES = {"i": SYMBOLS.i, "j": SYMBOLS.j, "k": SYMBOLS.k, "y": SYMBOLS.y}
"""The index symbols by name."""


_DUMMY_NAMES = ("j", "k", "l", "m", "p", "q", "r")


def _fresh_index(taken: set[str]) -> sp.Symbol:
    for name in _DUMMY_NAMES:
        if name not in taken:
            return INDICES.get(name, index_symbol(name))
    raise ValueError(f"no free index name left; all of {_DUMMY_NAMES} are taken")


def _rename_outer(total: sp.Sum) -> sp.Sum:
    (dummy, lower, upper), body = total.limits[0], total.function
    inner = {v for nested in body.atoms(sp.Sum) for v in nested.variables}
    if len(total.limits) != 1 or dummy not in inner:
        return total
    taken = {str(a) for a in total.free_symbols | body.free_symbols | inner}
    taken |= {str(a) for a in body.atoms(sp.Symbol)}
    fresh = _fresh_index(taken)
    # the inner sums bind their own ``dummy``: set them aside while renaming the outer one
    hidden = {nested: sp.Dummy() for nested in body.atoms(sp.Sum) if dummy in nested.variables}
    renamed = body.xreplace(hidden).xreplace({dummy: fresh})
    return sp.Sum(renamed.xreplace({d: nested for nested, d in hidden.items()}),
                  (fresh, lower, upper))


def distinct_dummies(expr: sp.Basic) -> sp.Basic:
    r"""``expr`` with the dummy index of every sum that encloses another sum over the same index renamed.

    :func:`collapse_sums` names every remaining dummy :math:`k`, so a row sum can read
    :math:`\sum_k e^{x_k} / (\sum_k e^{x_k})^2`: correct for SymPy, whose sums bind
    their own index, but ambiguous on paper. The outer index becomes the first of
    :math:`j, k, l, m, \dots` that is used nowhere in the sum, so every sum a reader
    sees has its own letter. The value of the expression does not change.

    Examples:
        >>> k = SYMBOLS.k
        >>> nested = sp.Sum(sp.exp(SYMBOLS.x[k]) / sp.Sum(sp.exp(SYMBOLS.x[k]), (k, 0, 2)), (k, 0, 2))
        >>> distinct_dummies(nested)
        Sum(exp(x[j])/Sum(exp(x[k]), (k, 0, 2)), (j, 0, 2))
    """
    return expr.replace(lambda e: isinstance(e, sp.Sum), _rename_outer)


def to_latex(expr: sp.Basic, lhs: str | None = None) -> str:
    r"""LaTeX for ``expr``; with ``lhs``, the equation ``lhs = expr``.

    Nested sums get distinct dummy indices first (:func:`distinct_dummies`). For example
    ``to_latex(softmax_jacobian_entry(True), r"\frac{\partial s_i}{\partial x_j}")``.

    Examples:
        >>> from byhand.symbolic import softmax_jacobian_entry
        >>> print(to_latex(softmax_jacobian_entry(True), "J_{ij}"))
        J_{ij} = \left(\delta_{i j} - {s}_{j}\right) {s}_{i}
    """
    body = sp.latex(distinct_dummies(expr))
    return body if lhs is None else f"{lhs} = {body}"
