"""Training with optax through jaxloss.train: real small models trained to a target."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss as jl


@pytest.fixture(autouse=True)
def _optax_promotion():
  """optax's own code (e.g. adam's bias correction) relies on standard dtype promotion."""
  with jax.numpy_dtype_promotion("standard"):
    yield


def linear(params, x):
  return x @ params["w"] + params["b"]


def _zeros(d):
  return {"w": jnp.zeros(d), "b": jnp.zeros(())}


def _regression_data(seed=0, n=200, outlier_fraction=0.15):
  """y = 2x + 1 + noise, with a fraction of the training targets shifted by +20 (outliers)."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
  y = (2 * x[:, 0] + 1 + 0.1 * rng.normal(size=n)).astype(np.float32)
  outliers = rng.uniform(size=n) < outlier_fraction
  y_train = np.where(outliers, y + 20, y).astype(np.float32)
  x_test = np.linspace(-2, 2, 101, dtype=np.float32)[:, None]
  return {"inputs": jnp.asarray(x), "targets": jnp.asarray(y_train)}, (x_test, 2 * x_test[:, 0] + 1)


def _train(step, params, opt_state, batch, steps):
  losses = []
  for _ in range(steps):
    params, opt_state, loss = step(params, opt_state, batch)[:3]
    losses.append(float(loss))
  return params, opt_state, losses


def _clean_test_mse(params, test):
  x_test, y_test = test
  return float(np.mean((np.asarray(linear(params, jnp.asarray(x_test))) - y_test) ** 2))


@pytest.mark.parametrize(
  "optimizer, steps",
  [(optax.adam(0.05), 400), (optax.sgd(0.02, momentum=0.9), 400)],
  ids=["adam", "sgd-momentum"],
)
def test_robust_losses_beat_mse_on_data_with_outliers(optimizer, steps):
  batch, test = _regression_data()
  errors = {}
  for name, loss, options in [("mse", jl.mse, {}), ("mae", jl.mae, {}), ("huber", jl.huber, {"delta": 1.0})]:
    step = jl.train.make_step(jl.train.objective(linear, loss, **options), optimizer)
    params = _zeros(1)
    params, _, losses = _train(step, params, optimizer.init(params), batch, steps)
    assert losses[-1] < losses[0]
    errors[name] = _clean_test_mse(params, test)
  # MSE is pulled towards the outliers (clean-test error ~3); MAE and Huber stay on the clean line.
  assert errors["mse"] > 1.0, errors
  assert errors["mae"] < 0.05 and errors["huber"] < 0.05, errors


def _evaluation_counter():
  count = {"n": 0}

  def counted(params, x):
    jax.debug.callback(lambda: count.__setitem__("n", count["n"] + 1))
    return linear(params, x)

  return counted, count


def test_lbfgs_reaches_least_squares_and_full_batch_saves_evaluations():
  batch, _ = _regression_data(outlier_fraction=0.0)
  x = np.c_[np.asarray(batch["inputs"]), np.ones(200)]
  w_star = np.linalg.lstsq(x, np.asarray(batch["targets"]), rcond=None)[0]
  evaluations = {}
  for full_batch in (False, True):
    model, count = _evaluation_counter()
    optimizer = optax.lbfgs()
    step = jl.train.make_step(jl.train.objective(model, jl.mse), optimizer, full_batch=full_batch)
    params = _zeros(1)
    params, _, _ = _train(step, params, optimizer.init(params), batch, 8)
    np.testing.assert_allclose([params["w"][0], params["b"]], w_star, rtol=1e-4, atol=1e-4)
    evaluations[full_batch] = count["n"]
  # Without reuse every step evaluates once more than the line search does.
  assert evaluations[True] < evaluations[False], evaluations


@pytest.mark.parametrize(
  "optimizer",
  [
    optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(max_backtracking_steps=15, store_grad=True)),
    optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(max_backtracking_steps=15)),
    optax.chain(optax.sgd(1.0), optax.scale_by_zoom_linesearch(max_linesearch_steps=15)),
  ],
  ids=["backtracking-store-grad", "backtracking", "zoom"],
)
def test_line_search_optimizers_converge(optimizer):
  batch, test = _regression_data(outlier_fraction=0.0)
  step = jl.train.make_step(jl.train.objective(linear, jl.huber), optimizer, full_batch=True)
  params = _zeros(1)
  params, _, losses = _train(step, params, optimizer.init(params), batch, 30)
  assert losses[-1] < 0.01 * losses[0]
  assert _clean_test_mse(params, test) < 0.01


def test_reduce_on_plateau_gets_the_value_and_reduces_the_scale():
  batch, test = _regression_data()
  optimizer = optax.chain(
    optax.adam(0.2),
    optax.contrib.reduce_on_plateau(patience=5, cooldown=5, factor=0.5, accumulation_size=1),
  )
  step = jl.train.make_step(jl.train.objective(linear, jl.huber), optimizer)
  params = _zeros(1)
  params, state, _ = _train(step, params, optimizer.init(params), batch, 300)
  scale = float(optax.tree.get(state, "scale"))
  assert scale < 1.0, "reduce_on_plateau never saw a plateau: it was not given the value"
  assert _clean_test_mse(params, test) < 0.5


def test_chain_with_clipping_and_adamw():
  batch, test = _regression_data()
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.05, weight_decay=1e-4))
  step = jl.train.make_step(jl.train.objective(linear, jl.mae), optimizer)
  params = _zeros(1)
  params, _, _ = _train(step, params, optimizer.init(params), batch, 400)
  assert _clean_test_mse(params, test) < 0.1


def test_multi_steps_accumulates_before_updating():
  batch, _ = _regression_data()
  optimizer = optax.MultiSteps(optax.sgd(0.1), every_k_schedule=2)
  step = jl.train.make_step(jl.train.objective(linear, jl.mse), optimizer)
  params = _zeros(1)
  state = optimizer.init(params)
  after_one, state, _ = step(params, state, batch)
  np.testing.assert_array_equal(after_one["w"], params["w"])
  after_two, state, _ = step(after_one, state, batch)
  assert float(jnp.abs(after_two["w"] - params["w"])[0]) > 0


def test_donated_step_matches_plain_step():
  batch, _ = _regression_data()
  optimizer = optax.adam(0.05)
  f = jl.train.objective(linear, jl.huber)
  plain, donated = jl.train.make_step(f, optimizer), jl.train.make_step(f, optimizer, donate=True)
  p1, _, l1 = _train(plain, _zeros(1), optimizer.init(_zeros(1)), batch, 5)
  p2, _, l2 = _train(donated, _zeros(1), optimizer.init(_zeros(1)), batch, 5)
  assert l1 == l2
  jax.tree.map(np.testing.assert_array_equal, p1, p2)
  params = _zeros(1)
  donated(params, optimizer.init(params), batch)
  assert params["w"].is_deleted(), "the step did not donate its params"


def test_objective_aux_metrics_and_batch_forms():
  batch, _ = _regression_data(n=10)
  params = {"w": jnp.ones(1), "b": jnp.zeros(())}
  where = jnp.arange(10) < 5
  f = jl.train.objective(linear, jl.mse)
  plain = jl.mse(linear(params, batch["inputs"]), batch["targets"], where=where)
  assert float(f(params, {**batch, "where": where})) == float(plain)
  assert float(f(params, (batch["inputs"], batch["targets"], None, where))) == float(plain)
  g = jl.train.objective(linear, jl.mae, aux=True, metrics={"max_error": lambda p, t: jnp.max(jnp.abs(p - t))})
  value, aux = g(params, batch)
  assert aux["per_example"].shape == (10,) and aux["predictions"].shape == (10,)
  np.testing.assert_allclose(float(value), float(jnp.mean(aux["per_example"])), rtol=1e-6)
  np.testing.assert_allclose(float(aux["max_error"]), float(jnp.max(aux["per_example"])), rtol=1e-6)
  step = jl.train.make_step(g, optax.sgd(0.1))
  out = step(params, optax.sgd(0.1).init(params), batch)
  assert len(out) == 4 and set(out[3]) == {"predictions", "per_example", "max_error"}


def test_lbfgs_with_aux_objective():
  batch, _ = _regression_data(outlier_fraction=0.0)
  optimizer = optax.lbfgs()
  step = jl.train.make_step(jl.train.objective(linear, jl.mse, aux=True), optimizer, full_batch=True)
  params = _zeros(1)
  state = optimizer.init(params)
  for _ in range(8):
    params, state, loss, aux = step(params, state, batch)
  assert float(loss) < 0.02 and aux["per_example"].shape == (200,)


def test_bad_batches_and_optimizers_are_clear_errors():
  f = jl.train.objective(linear, jl.mse)
  with pytest.raises(ValueError, match=r"needs the keys 'inputs' and 'targets' \(missing \['targets'\]\)"):
    f(_zeros(1), {"inputs": jnp.ones((2, 1))})
  with pytest.raises(TypeError, match=r"`batch` must be a mapping"):
    f(_zeros(1), jnp.ones((2, 1)))
  with pytest.raises(TypeError, match=r"`optimizer` must be an optax.GradientTransformation"):
    jl.train.make_step(f, lambda g: g)
  with pytest.raises(ValueError, match=r"pass aux=True"):
    jl.train.objective(linear, jl.mse, metrics={"m": jnp.mean})


def _separable_data(seed, n, classes=2, dim=2, margin=0.3):
  """Points labelled by a random linear teacher, keeping only those at least ``margin`` from its boundaries."""
  rng = np.random.default_rng(seed)
  teacher = rng.normal(size=(dim, classes))
  x = rng.uniform(-3, 3, (8 * n, dim))
  scores = x @ teacher
  top2 = np.sort(scores, axis=1)[:, -2:]
  keep = (top2[:, 1] - top2[:, 0]) > margin * np.linalg.norm(teacher)
  x = x[keep][:n].astype(np.float32)
  return jnp.asarray(x), np.argmax(x @ teacher, axis=1)


def _accuracy(params, x, labels):
  scores = np.asarray(linear(params, x))
  predicted = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
  return float(np.mean(predicted == labels))


BINARY_LOSSES = {
  # loss, how the {0, 1} class becomes the loss's target
  "logistic": (jl.binary_cross_entropy_with_logits, lambda y: y.astype(np.float32)),
  "hinge": (jl.hinge, lambda y: (2 * y - 1).astype(np.float32)),
}
OPTIMIZERS = {
  "adam": (lambda: optax.adam(0.05), {}, 300),
  "sgd-momentum": (lambda: optax.sgd(0.05, momentum=0.9), {}, 300),
  "lbfgs": (optax.lbfgs, {"full_batch": True}, 40),
  "reduce-on-plateau": (
    lambda: optax.chain(optax.adam(0.1), optax.contrib.reduce_on_plateau(patience=5, factor=0.5, accumulation_size=1)),
    {},
    300,
  ),
}


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("loss_name", sorted(BINARY_LOSSES))
def test_linear_classifiers_reach_target_accuracy(loss_name, optimizer_name):
  loss, to_target = BINARY_LOSSES[loss_name]
  make_optimizer, step_options, steps = OPTIMIZERS[optimizer_name]
  x, y = _separable_data(seed=1, n=300)
  x_test, y_test = _separable_data(seed=1, n=2000)  # same teacher, more points
  optimizer = make_optimizer()
  step = jl.train.make_step(jl.train.objective(linear, loss), optimizer, **step_options)
  params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
  batch = {"inputs": x, "targets": jnp.asarray(to_target(y))}
  params, _, losses = _train(step, params, optimizer.init(params), batch, steps)
  assert np.all(np.isfinite(losses)) and losses[-1] < 0.25 * losses[0], losses[::20]
  assert _accuracy(params, x_test, y_test) >= 0.97


def test_softmax_classifier_with_cross_entropy_reaches_target_accuracy():
  x, y = _separable_data(seed=2, n=300, classes=3)
  x_test, y_test = _separable_data(seed=2, n=2000, classes=3)
  optimizer = optax.adam(0.05)
  affine = lambda params, x: x @ params["w"] + params["b"][None, :]
  step = jl.train.make_step(jl.train.objective(affine, jl.cross_entropy, label_smoothing=0.05), optimizer)
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
  params, _, losses = _train(step, params, optimizer.init(params), {"inputs": x, "targets": jnp.asarray(y)}, 300)
  assert losses[-1] < 0.3 * losses[0]
  assert float(np.mean(np.argmax(np.asarray(affine(params, x_test)), axis=1) == y_test)) >= 0.97
