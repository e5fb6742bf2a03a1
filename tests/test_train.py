"""The training loop of byhand.train: data preparation, batches, the manual step, fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from byhand.data import Dataset
from byhand.layers import Linear, ReLU, Sequential
from byhand.losses import cross_entropy_forward_backward
from byhand.preprocess import Tensors, batch_indices
from byhand.timing import step_timings
from byhand.train import (
    History,
    Progress,
    TrainConfig,
    backward,
    confusion_matrix,
    evaluate,
    fit,
    hand_trainer,
    mlp,
    normalisation,
    predict,
    prepare,
    sgd_step,
    split_indices,
    torch_mlp,
    torch_step,
    torch_trainer,
    train_epoch,
    train_step,
)


def synthetic_dataset(n_train: int = 240, n_test: int = 50, seed: int = 0) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    return Dataset(
        name="synthetic",
        train_images=torch.randint(0, 256, (n_train, 28, 28), generator=gen, dtype=torch.uint8),
        train_labels=torch.randint(0, 10, (n_train,), generator=gen),
        test_images=torch.randint(0, 256, (n_test, 28, 28), generator=gen, dtype=torch.uint8),
        test_labels=torch.randint(0, 10, (n_test,), generator=gen),
        classes=tuple(str(d) for d in range(10)),
    )


def blobs(n: int, seed: int, dim: int = 20, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Well separated Gaussian clusters: a problem any MLP should solve."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 4
    y = torch.randint(0, classes, (n,), generator=gen)
    return centres[y] + torch.randn(n, dim, generator=gen), y


# ------------------------------------------------------------------------------ prepare


def test_normalisation_matches_float64_statistics():
    images = synthetic_dataset().train_images
    mean, std = normalisation(images)
    pixels = images.double() / 255
    assert mean == pytest.approx(float(pixels.mean()), rel=1e-12)
    assert std == pytest.approx(float(pixels.std()), rel=1e-12)


def test_normalisation_rejects_float_images():
    with pytest.raises(TypeError, match="uint8"):
        normalisation(torch.zeros(3, 28, 28))


def test_split_indices_is_seeded_disjoint_and_complete():
    train, valid = split_indices(60_000)
    assert len(train) == 50_000 and len(valid) == 10_000
    assert torch.equal(torch.cat([train, valid]).sort().values, torch.arange(60_000))
    assert torch.equal(train, train.sort().values) and torch.equal(valid, valid.sort().values)
    again_train, again_valid = split_indices(60_000)
    assert torch.equal(valid, again_valid) and torch.equal(train, again_train)
    assert not torch.equal(valid, split_indices(60_000, seed=1)[1])


@pytest.mark.parametrize(("n", "fraction"), [(60, 0.0), (60, 1.0), (1, 0.5), (3, 0.1)])
def test_split_indices_rejects_empty_sides(n, fraction):
    with pytest.raises(ValueError, match="split_indices"):
        split_indices(n, fraction)


def test_prepare_normalises_with_training_statistics():
    dataset = synthetic_dataset()
    data = prepare(dataset, dtype=torch.float64)
    assert isinstance(data, Tensors)
    assert data.x_train.shape == (200, 784) and data.x_valid.shape == (40, 784)
    assert data.x_test.shape == (50, 784)
    assert abs(float(data.x_train.mean())) < 1e-12
    assert float(data.x_train.std()) == pytest.approx(1.0, rel=1e-12)
    train_rows, valid_rows = split_indices(240)
    mean, std = normalisation(dataset.train_images[train_rows])
    expected = (dataset.test_images.reshape(50, -1).double() / 255 - mean) / std
    torch.testing.assert_close(data.x_test, expected)
    expected = (dataset.train_images[valid_rows].reshape(40, -1).double() / 255 - mean) / std
    torch.testing.assert_close(data.x_valid, expected)
    assert torch.equal(data.y_train, dataset.train_labels[train_rows])
    assert torch.equal(data.y_valid, dataset.train_labels[valid_rows])
    assert data.y_test.dtype == data.y_valid.dtype == torch.int64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prepare_places_everything_on_the_device(dtype):
    data = prepare(synthetic_dataset(), device="cpu", dtype=dtype)
    for tensor in data:
        assert tensor.device == torch.device("cpu")
    assert data.x_train.dtype == data.x_valid.dtype == data.x_test.dtype == dtype


def test_prepare_limit_keeps_the_first_images_then_splits():
    dataset = synthetic_dataset()
    data = prepare(dataset, limit=30)
    assert data.x_train.shape == (25, 784) and data.x_valid.shape == (5, 784)
    assert data.x_test.shape == (30, 784)
    train_rows, _ = split_indices(30)
    assert torch.equal(data.y_train, dataset.train_labels[:30][train_rows])
    with pytest.raises(ValueError, match="limit"):
        prepare(dataset, limit=0)


# ------------------------------------------------------------------------------ batches


def test_same_seed_gives_identical_batches():
    first = list(batch_indices(100, 32, torch.Generator().manual_seed(7)))
    again = list(batch_indices(100, 32, torch.Generator().manual_seed(7)))
    other = list(batch_indices(100, 32, torch.Generator().manual_seed(8)))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_batches_cover_every_row_once():
    batches = list(batch_indices(100, 32, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(100))


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        next(batch_indices(10, 0, torch.Generator()))


# -------------------------------------------------------------------------------- model


def test_mlp_shapes_and_seed():
    model = mlp([784, 50, 10], seed=3)
    assert [type(layer) for layer in model.layers] == [Linear, ReLU, Linear]
    assert model.layers[0].weight.shape == (50, 784)
    assert model.layers[2].bias.shape == (10,)
    again = mlp([784, 50, 10], seed=3)
    for (a, _), (b, _) in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_mlp_draws_like_nn_linear():
    torch.manual_seed(0)
    ours = mlp([20, 8, 3])
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    for (a, _), b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="sizes"):
        mlp([784])
    with pytest.raises(ValueError, match="sizes"):
        mlp([784, 0, 10])


def test_torch_mlp_copies_the_weights():
    model = mlp([6, 5, 4, 3], seed=1, dtype=torch.float64)
    net = torch_mlp(model)
    x = torch.randn(7, 6, dtype=torch.float64)
    torch.testing.assert_close(net(x), model.forward(x), rtol=0, atol=0)
    with pytest.raises(TypeError, match="Linear and ReLU"):
        torch_mlp(Sequential(Sequential()))


# --------------------------------------------------------------------------------- step


def test_backward_skips_only_the_input_gradient():
    model = mlp([12, 9, 4], seed=0, dtype=torch.float64)
    x = torch.randn(5, 12, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    _, grad = cross_entropy_forward_backward(model.forward(x), y)
    model.backward(grad)
    full = [g.clone() for _, g in model.parameters()]
    backward(model, grad)
    for (_, g), expected in zip(model.parameters(), full, strict=True):
        torch.testing.assert_close(g, expected, rtol=1e-14, atol=1e-14)


def test_sgd_step_needs_gradients():
    with pytest.raises(RuntimeError, match="no gradient"):
        sgd_step(mlp([3, 2], seed=0), 0.1)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-13), (torch.float32, 1e-5)])
def test_manual_step_equals_autograd_step(dtype, tol):
    model = mlp([784, 32, 10], seed=0, dtype=dtype)
    net = torch_mlp(model)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(64, 784, generator=gen, dtype=dtype)
        y = torch.randint(0, 10, (64,), generator=gen)
        ours = train_step(model, x, y, lr=0.1)
        theirs = torch_step(net, optimizer, x, y)
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)
    for (p, _), q in zip(model.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach(), rtol=tol, atol=tol)


def test_train_step_returns_the_loss_before_the_update():
    model = mlp([10, 3], seed=0, dtype=torch.float64)
    x, y = torch.randn(4, 10, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    before = F.cross_entropy(model.forward(x), y)
    loss = train_step(model, x, y, lr=0.5)
    torch.testing.assert_close(loss, before)
    assert float(F.cross_entropy(model.forward(x), y)) < float(before)


def test_train_epoch_uses_the_given_loss_function():
    calls = []

    def loss_fn(logits, target):
        calls.append(len(target))
        return cross_entropy_forward_backward(logits, target)

    x, y = blobs(50, seed=0)
    model = mlp([20, 3], seed=0)
    losses = train_epoch(model, (x, y), TrainConfig(batch_size=16, lr=0.1),
                         step=hand_trainer(model, 0.1, loss_fn))
    assert calls == [16, 16, 16, 2]
    assert losses.shape == (4,) and torch.isfinite(losses).all()


def test_train_epoch_in_the_0_1_0_form_warns_and_gives_the_same_losses():
    x, y = blobs(50, seed=0)
    new = train_epoch(mlp([20, 3], seed=0), (x, y), TrainConfig(batch_size=16, lr=0.1),
                      generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match=r"train_epoch\(model, x, y, batch_size, lr"):
        old = train_epoch(mlp([20, 3], seed=0), x, y, batch_size=16, lr=0.1,
                          generator=torch.Generator().manual_seed(0),
                          loss_fn=cross_entropy_forward_backward)
    assert torch.equal(old, new)


def test_fit_loss_fn_is_deprecated_for_a_step():
    x, y = blobs(40, seed=0)
    data = Tensors(x[:32], y[:32], x[32:], y[32:], x[32:], y[32:])
    with pytest.warns(DeprecationWarning, match=r"step=hand_trainer\(model, lr, loss_fn\)"):
        old = fit(mlp([20, 3], seed=0), data, epochs=1, batch_size=8,
                  loss_fn=cross_entropy_forward_backward)
    new = fit(mlp([20, 3], seed=0), data, epochs=1, batch_size=8)
    assert old.step_loss == new.step_loss


# ---------------------------------------------------------------------------- evaluate


def test_evaluate_and_predict_agree_with_torch():
    model = mlp([20, 8, 3], seed=0, dtype=torch.float64)
    x, y = blobs(40, seed=1)
    x = x.double()
    logits = predict(model, x, batch_size=7)
    torch.testing.assert_close(logits, model.forward(x))
    loss, accuracy = evaluate(model, x, y, batch_size=7)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-12)
    assert accuracy == pytest.approx(float((logits.argmax(1) == y).double().mean()))


def test_confusion_matrix_counts_pairs():
    target = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert torch.equal(confusion_matrix(predicted, target, n_classes=3), expected)


# --------------------------------------------------------------------------------- fit


def test_fit_learns_a_separable_problem():
    x_train, y_train = blobs(600, seed=0)
    x_test, y_test = blobs(200, seed=1)
    data = Tensors(x_train, y_train, x_test, y_test, x_test, y_test)
    history = fit(mlp([20, 16, 3], seed=0), data, epochs=3, batch_size=32, lr=0.1,
                  progress=False)
    assert isinstance(history, History)
    assert history.epochs == 3
    assert history.valid_accuracy[-1] >= 0.95
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.step_loss) == 3 * 19
    assert len(history.seconds) == len(history.valid_loss) == 3
    assert history.total_seconds == pytest.approx(sum(history.seconds))
    assert set(history.to_dict()) == {"train_loss", "valid_loss", "valid_accuracy", "seconds",
                                      "step_loss"}


def test_fit_validates_on_the_validation_rows_and_never_reads_the_test_rows():
    x, y = blobs(300, seed=0)
    x_valid, y_valid = blobs(90, seed=2)
    poisoned = torch.full((5, 20), float("nan"))  # any use of the test rows would show
    data = Tensors(x, y, x_valid, y_valid, poisoned, torch.zeros(5, dtype=torch.int64))
    model = mlp([20, 8, 3], seed=0)
    history = fit(model, data, epochs=2, batch_size=50, lr=0.1, progress=False)
    assert (history.valid_loss[-1], history.valid_accuracy[-1]) == evaluate(model, x_valid, y_valid)


def test_history_time_to_accuracy():
    history = History(train_loss=[1.0, 0.5, 0.3], valid_loss=[1.0, 0.6, 0.4],
                      valid_accuracy=[0.5, 0.91, 0.95], seconds=[1.0, 2.0, 4.0])
    assert history.epochs_to(0.9) == 2 and history.seconds_to(0.9) == 3.0
    assert history.epochs_to(0.99) is None and history.seconds_to(0.99) is None


def test_fit_with_the_autograd_twin_follows_the_manual_trajectory():
    x, y = blobs(200, seed=0)
    data = Tensors(x.double(), y, x[:50].double(), y[:50], x[:50].double(), y[:50])
    model = mlp([20, 8, 3], seed=0, dtype=torch.float64)
    net = torch_mlp(model)
    ours = fit(model, data, epochs=2, batch_size=32, lr=0.2, progress=False)
    theirs = fit(net, data, epochs=2, batch_size=32, progress=False,
                 step=torch_trainer(net, 0.2))
    torch.testing.assert_close(torch.tensor(ours.step_loss), torch.tensor(theirs.step_loss),
                               rtol=1e-12, atol=1e-12)
    assert ours.valid_accuracy == theirs.valid_accuracy
    for (p, _), q in zip(model.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach(), rtol=1e-12, atol=1e-12)
        assert q.grad is not None


def test_full_batch_fit_is_gradient_descent():
    x, y = blobs(60, seed=0)
    x = x.double()
    data = Tensors(x, y, x, y, x, y)
    model, reference = mlp([20, 3], seed=0, dtype=torch.float64), mlp([20, 3], seed=0,
                                                                      dtype=torch.float64)
    history = fit(model, data, epochs=3, batch_size=60, lr=0.5, progress=False)
    losses = [train_step(reference, x, y, 0.5) for _ in range(3)]
    torch.testing.assert_close(torch.tensor(history.step_loss, dtype=torch.float64),
                               torch.stack(losses),
                               rtol=1e-12, atol=1e-12)


def test_fit_is_reproducible_and_can_stop_early():
    x, y = blobs(300, seed=0)
    data = Tensors(x, y, x, y, x, y)
    first = fit(mlp([20, 8, 3], seed=0), data, epochs=2, progress=False)
    again = fit(mlp([20, 8, 3], seed=0), data, epochs=2, progress=False)
    assert first.step_loss == again.step_loss
    early = fit(mlp([20, 8, 3], seed=0), data, epochs=5, progress=False, stop_at_accuracy=0.0)
    assert early.epochs == 1


def test_fit_with_progress_bars(capsys):
    x, y = blobs(64, seed=0)
    fit(mlp([20, 3], seed=0), Tensors(x, y, x, y, x, y), epochs=1, batch_size=32,
        progress=True)
    assert "training" in capsys.readouterr().err


def test_fit_rejects_zero_epochs():
    x, y = blobs(10, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        fit(mlp([20, 3], seed=0), Tensors(x, y, x, y, x, y), epochs=0, progress=False)


def test_fit_shows_no_bar_by_default_off_a_terminal(capsys):
    x, y = blobs(64, seed=0)
    fit(mlp([20, 3], seed=0), Tensors(x, y, x, y, x, y), epochs=1, batch_size=32)
    assert capsys.readouterr().err == ""


def test_step_timings_reports_latency_and_throughput():
    timings = step_timings(sizes=(20, 8, 3), batch_size=4, rounds=2, min_run_time=0.001,
                           back_to_back=3)
    for side in ("manual", "autograd"):
        for kind in ("latency", "throughput"):
            summary = timings[side][kind]
            assert set(summary) == {"median_s", "q25_s", "q75_s", "iqr_s", "min_s", "blocks"}
            assert 0 < summary["min_s"] <= summary["q25_s"] <= summary["median_s"]
            assert summary["median_s"] <= summary["q75_s"] < 10
            assert summary["iqr_s"] == pytest.approx(summary["q75_s"] - summary["q25_s"])
            assert summary["blocks"] >= 2
    assert timings["manual_over_autograd"] == pytest.approx(
        timings["manual"]["throughput"]["median_s"] / timings["autograd"]["throughput"]["median_s"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_follows_the_cpu_trajectory():
    x, y = blobs(256, seed=0)
    cpu = Tensors(x, y, x[:64], y[:64], x[:64], y[:64])
    cuda = Tensors(*(t.to("cuda") for t in cpu))
    on_cpu = fit(mlp([20, 16, 3], seed=0), cpu, epochs=2, batch_size=32, lr=0.1, progress=False)
    on_cuda = fit(mlp([20, 16, 3], seed=0, device="cuda"), cuda, epochs=2, batch_size=32,
                  lr=0.1, progress=False)
    torch.testing.assert_close(torch.tensor(on_cuda.step_loss), torch.tensor(on_cpu.step_loss),
                               rtol=1e-4, atol=1e-5)


def test_train_epoch_progress_and_callback(capsys):
    x, y = blobs(40, seed=0)
    calls = []
    bar = Progress(3, "epoch")
    train_epoch(mlp([20, 3], seed=0), (x, y), TrainConfig(batch_size=16, lr=0.1),
                on_step=lambda: (calls.append(1), bar()))
    bar.close()
    assert len(calls) == 3
    assert "epoch" in capsys.readouterr().err


def test_train_epoch_without_a_step_needs_a_byhand_layer() -> None:
    x, y = torch.randn(8, 4), torch.arange(8) % 2
    with pytest.raises(TypeError, match=r"train_epoch: model must be a byhand Layer .* got Linear"):
        train_epoch(torch.nn.Linear(4, 2), (x, y), TrainConfig(batch_size=4))


def test_fit_lr_beside_a_step_is_deprecated():
    x, y = blobs(40, seed=0)
    data = Tensors(x[:32], y[:32], x[32:], y[32:], x[32:], y[32:])
    net = torch_mlp(mlp([20, 3], seed=0))
    with pytest.warns(DeprecationWarning, match="lr is used by the default step only"):
        fit(net, data, epochs=1, lr=0.1, step=torch_trainer(net, 0.1))
