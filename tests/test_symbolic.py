"""byhand.symbolic: each SymPy derivation returns what its docstring claims."""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import byhand
from byhand import symbolic
from byhand.symbolic import SYMBOLS

i, j, k, y, n = SYMBOLS.i, SYMBOLS.j, SYMBOLS.k, SYMBOLS.y, SYMBOLS.n
s = SYMBOLS.s
delta = sp.KroneckerDelta

LOGITS = [0.3, -1.2, 2.0, 0.7]


def s_of(index: sp.Expr) -> sp.Expr:
    return symbolic.softmax_expression(index)


def is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def test_partition_function_general_and_explicit():
    assert symbolic.partition_function() == sp.Sum(sp.exp(SYMBOLS.x[k]), (k, 0, n - 1))
    explicit = symbolic.partition_function(3)
    assert explicit == sum(sp.exp(xa) for xa in symbolic.logits(3))
    assert symbolic.partition_function().xreplace({n: 3}).doit() == explicit


def test_softmax_expression_matches_byhand():
    values = torch.tensor(LOGITS, dtype=torch.float64)
    expected = byhand.softmax(values, dim=0)
    for a in range(len(LOGITS)):
        assert symbolic.evaluate(symbolic.softmax_expression(), LOGITS, i=a) == pytest.approx(
            float(expected[a]), rel=1e-14)


def test_log_softmax_and_logsumexp_expressions_match_byhand():
    values = torch.tensor(LOGITS, dtype=torch.float64)
    lse = symbolic.evaluate(symbolic.logsumexp_expression(), LOGITS)
    assert lse == pytest.approx(float(byhand.logsumexp(values)), rel=1e-14)
    ell = byhand.log_softmax(values, dim=0)
    for a in range(len(LOGITS)):
        got = symbolic.evaluate(symbolic.log_softmax_expression(), LOGITS, i=a)
        assert got == pytest.approx(float(ell[a]), rel=1e-13)


def test_cross_entropy_expression_matches_torch():
    values = torch.tensor([LOGITS], dtype=torch.float64)
    for target in range(len(LOGITS)):
        expected = torch.nn.functional.cross_entropy(values, torch.tensor([target]))
        got = symbolic.evaluate(symbolic.cross_entropy_expression(), LOGITS, y=target)
        assert got == pytest.approx(float(expected), rel=1e-13)


def test_collapse_sums_sifts_the_delta():
    a = sp.IndexedBase("a")
    collapsed = symbolic.collapse_sums(sp.Sum(a[k] * delta(j, k), (k, 0, n - 1)))
    assert collapsed == a[j]
    assert not collapsed.has(sp.Piecewise)


def test_collapse_sums_keeps_undecidable_conditions():
    a, m = sp.IndexedBase("a"), sp.Symbol("m", integer=True)
    expr = sp.Sum(a[k] * delta(m, k), (k, 0, n - 1))
    assert symbolic.collapse_sums(expr).has(sp.Piecewise)


def test_collapse_sums_renames_dummies_so_equal_sums_cancel():
    normalisation = symbolic.collapse_sums(sp.Sum(s_of(j), (j, 0, n - 1)))
    assert sp.simplify(normalisation) == 1  # sum_j e^{x_j} / sum_k e^{x_k}
    row_sum = symbolic.collapse_sums(sp.Sum(symbolic.softmax_jacobian_entry(), (j, 0, n - 1)))
    assert sp.simplify(row_sum) == 0  # J 1 = 0 for every n


def test_collapse_sums_never_captures_an_index():
    a = sp.IndexedBase("a")
    inner = sp.Sum(a[k] * a[j], (k, 0, n - 1))  # mentions the outer dummy j
    outer = sp.Sum(inner, (j, 0, n - 1))
    assert symbolic.collapse_sums(outer) == outer.doit()


def test_softmax_jacobian_steps():
    steps = symbolic.softmax_jacobian_steps()
    assert list(steps) == ["softmax", "derivative", "collapsed", "factored", "softmax names"]
    assert steps["derivative"].has(sp.Sum) and steps["derivative"].has(delta(j, k))
    assert not steps["collapsed"].has(delta(j, k))
    target = s_of(i) * (delta(i, j) - s_of(j))
    for key in ("derivative", "collapsed", "factored"):
        assert is_zero(symbolic.collapse_sums(steps[key]) - target)
    assert is_zero(steps["softmax names"] - s[i] * (delta(i, j) - s[j]))


def test_softmax_jacobian_entry():
    entry = symbolic.softmax_jacobian_entry()
    assert is_zero(entry - s_of(i) * (delta(i, j) - s_of(j)))
    assert is_zero(symbolic.softmax_jacobian_entry(softmax_names=True) - s[i] * (delta(i, j) - s[j]))


def test_split_on_delta_proves_symmetry():
    entry = symbolic.softmax_jacobian_entry(softmax_names=True)
    diagonal, off = symbolic.split_on_delta(entry)
    assert is_zero(diagonal - s[i] * (1 - s[i]))
    assert is_zero(off + s[i] * s[j])
    swapped = entry.xreplace({i: j, j: i})
    for ours, theirs in zip(symbolic.split_on_delta(entry), symbolic.split_on_delta(swapped),
                            strict=True):
        assert is_zero(ours - theirs)
    # log-softmax is not symmetric: off the diagonal -s_j against -s_i
    ell = symbolic.log_softmax_jacobian_entry(softmax_names=True)
    _, off_ell = symbolic.split_on_delta(ell)
    _, off_swapped = symbolic.split_on_delta(ell.xreplace({i: j, j: i}))
    assert not is_zero(off_ell - off_swapped)


def test_softmax_jacobian_entry_matches_byhand():
    expected = byhand.softmax_jacobian(torch.tensor(LOGITS, dtype=torch.float64))
    for form in (symbolic.softmax_jacobian_entry(), symbolic.softmax_jacobian_entry(True)):
        for a in range(len(LOGITS)):
            for b in range(len(LOGITS)):
                got = symbolic.evaluate(form, LOGITS, i=a, j=b)
                assert got == pytest.approx(float(expected[a, b]), rel=1e-12, abs=1e-15)


def test_log_softmax_jacobian_entry():
    assert is_zero(symbolic.log_softmax_jacobian_entry() - (delta(i, j) - s_of(j)))
    assert is_zero(symbolic.log_softmax_jacobian_entry(True) - (delta(i, j) - s[j]))


def test_logsumexp_gradient_entry():
    assert is_zero(symbolic.logsumexp_gradient_entry() - s_of(j))
    assert symbolic.logsumexp_gradient_entry(True) == s[j]


def test_cross_entropy_gradient_entry():
    assert is_zero(symbolic.cross_entropy_gradient_entry() - (s_of(j) - delta(j, y)))
    assert is_zero(symbolic.cross_entropy_gradient_entry(True) - (s[j] - delta(j, y)))


def test_cross_entropy_gradient_entry_matches_autograd():
    entry = symbolic.cross_entropy_gradient_entry()
    for target in range(len(LOGITS)):
        x = torch.tensor([LOGITS], dtype=torch.float64, requires_grad=True)
        torch.nn.functional.cross_entropy(x, torch.tensor([target])).backward()
        got = [symbolic.evaluate(entry, LOGITS, j=b, y=target) for b in range(len(LOGITS))]
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), x.grad[0])


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_softmax_jacobian_matrix_is_diag_minus_outer(size):
    jac = symbolic.softmax_jacobian_matrix(size)
    vec = symbolic.softmax_vector(size)
    assert jac.shape == (size, size)
    assert sp.simplify(jac - (sp.diag(*vec) - vec * vec.T)) == sp.zeros(size, size)


def test_softmax_jacobian_matrix_in_softmax_names():
    named = symbolic.in_terms_of_softmax(symbolic.softmax_jacobian_matrix(3), 3)
    names = sp.Matrix([s[a] for a in range(3)])
    diag = sp.Matrix(3, 3, lambda a, b: s[a] if a == b else 0)
    assert sp.expand(named - (diag - names * names.T)) == sp.zeros(3, 3)


def test_general_entry_agrees_with_explicit_matrix():
    for entry, matrix in [
        (symbolic.softmax_jacobian_entry(), symbolic.softmax_jacobian_matrix(3)),
        (symbolic.log_softmax_jacobian_entry(), symbolic.log_softmax_jacobian_matrix(3)),
    ]:
        assert sp.simplify(symbolic.entry_matrix(entry, 3) - matrix) == sp.zeros(3, 3)


def test_log_softmax_jacobian_matrix_matches_autograd():
    values = torch.tensor(LOGITS, dtype=torch.float64)
    expected = torch.autograd.functional.jacobian(lambda v: torch.log_softmax(v, 0), values)
    got = symbolic.evaluate_matrix(symbolic.log_softmax_jacobian_matrix(len(LOGITS)), LOGITS)
    torch.testing.assert_close(got, expected)


def test_evaluate_matrix_matches_byhand_and_autograd():
    values = torch.tensor(LOGITS, dtype=torch.float64)
    got = symbolic.evaluate_matrix(symbolic.softmax_jacobian_matrix(len(LOGITS)), LOGITS)
    torch.testing.assert_close(got, byhand.softmax_jacobian(values))
    expected = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), values)
    torch.testing.assert_close(got, expected)


def test_evaluate_rejects_unknown_index_names():
    with pytest.raises(ValueError, match="unknown index"):
        symbolic.evaluate(symbolic.softmax_expression(), LOGITS, q=0)


def test_to_latex():
    entry = symbolic.softmax_jacobian_entry(softmax_names=True)
    text = symbolic.to_latex(entry, r"\frac{\partial s_i}{\partial x_j}")
    assert text.startswith(r"\frac{\partial s_i}{\partial x_j} = ")
    assert r"\delta_{i j}" in text
    assert symbolic.to_latex(s[i]) == sp.latex(s[i])


def test_the_length_prints_as_the_number_of_classes():
    assert sp.latex(symbolic.partition_function()) == r"\sum_{k=0}^{C - 1} e^{{x}_{k}}"


def test_distinct_dummies_gives_nested_sums_their_own_letters():
    row_sum = symbolic.collapse_sums(sp.Sum(symbolic.softmax_jacobian_entry(), (j, 0, n - 1)))
    # collapse_sums names both the row sum's dummy and Z's dummy k
    assert all(list(total.variables) == [k] for total in row_sum.atoms(sp.Sum))
    shown = symbolic.distinct_dummies(row_sum)
    outer = [t for t in shown.atoms(sp.Sum) if t.function.has(sp.Sum)]
    assert [list(t.variables) for t in outer] == [[j]]
    assert symbolic.partition_function() in outer[0].function.atoms(sp.Sum)  # Z keeps k
    assert is_zero(symbolic.collapse_sums(shown))  # the value is unchanged: J 1 = 0
    assert r"\sum_{j=0}^{C - 1}" in symbolic.to_latex(row_sum)


def test_distinct_dummies_leaves_separate_sums_alone():
    expr = symbolic.softmax_jacobian_steps()["derivative"]
    assert symbolic.distinct_dummies(expr) == expr
