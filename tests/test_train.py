"""Training with optax through jaxloss.train: real small models trained to a target."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

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
  with pytest.raises(ValueError, match=r"jaxloss.mse needs the batch key 'targets'"):
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


# -- batch routing, several model outputs, non-differentiable leaves, learned options, runtime checks --------


def test_batch_keys_are_routed_to_the_model_or_the_loss_and_a_stray_key_is_an_error():
  batch, _ = _regression_data(n=16)
  params = {"w": jnp.ones(1), "b": jnp.zeros(())}

  def model(params, x, scale):
    return linear(params, x) * scale

  where = jnp.arange(16) < 8
  f = jl.train.objective(model, jl.mse, model_keys=("scale",))
  expected = jl.mse(2.0 * linear(params, batch["inputs"]), batch["targets"], where=where)
  np.testing.assert_allclose(float(f(params, {**batch, "scale": 2.0, "where": where})), float(expected), rtol=1e-6)
  with pytest.raises(ValueError, match=r"batch key\(s\) \['dropout_key'\] go to neither the model .* nor the loss"):
    jl.train.objective(linear, jl.cross_entropy)(params, {**batch, "dropout_key": jax.random.key(0)})
  with pytest.raises(ValueError, match=r"the batch has no \['scale'\], named in `model_keys`"):
    f(params, batch)
  only_where = jl.train.objective(linear, jl.mse, loss_keys=("where",))
  with pytest.raises(ValueError, match=r"\['weights'\] go to neither"):
    only_where(params, {**batch, "weights": jnp.ones(16)})
  with pytest.raises(ValueError, match=r"takes no keyword \['bogus'\]"):
    jl.train.objective(linear, jl.mse, loss_keys=("bogus",))
  with pytest.raises(TypeError, match=r"jaxloss.huber has no option \['delat'\]"):
    jl.train.objective(linear, jl.huber, delat=1.0)
  with pytest.raises(ValueError, match=r"in both `model_keys` and `loss_keys`"):
    jl.train.objective(model, jl.mse, model_keys=("where",), loss_keys=("where",))


def test_a_traced_option_from_the_batch_follows_a_schedule_in_one_compiled_step():
  batch, _ = _regression_data(n=64)
  step = jl.train.make_step(jl.train.objective(linear, jl.huber), optax.sgd(0.1))
  params = {"w": jnp.ones(1), "b": jnp.zeros(())}
  state = step.init(params)
  for delta in (4.0, 2.0, 1.0, 0.5):  # annealed, e.g. from the step counter
    _, _, loss = step(params, state, {**batch, "delta": jnp.float32(delta)})
    expected = jl.huber(linear(params, batch["inputs"]), batch["targets"], delta=delta)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
  assert step._run._cache_size() == 1


def test_model_returns_several_loss_inputs_with_unpack():
  key = jax.random.key(0)
  hidden = jax.random.normal(key, (32, 8))
  labels = jax.random.randint(jax.random.key(1), (32,), 0, 5)
  params = {"body": jnp.eye(8), "head": jax.random.normal(jax.random.key(2), (5, 8))}
  # a fused head: the model gives its hidden states and its head weight, the loss never forms the logits
  fused = jl.train.objective(lambda p, x: (x @ p["body"], p["head"]), jl.linear_cross_entropy, unpack=True)
  plain = jl.train.objective(lambda p, x: x @ p["body"] @ p["head"].T, jl.cross_entropy)
  batch = {"inputs": hidden, "targets": labels}
  (v1, g1), (v2, g2) = (jax.value_and_grad(f)(params, batch) for f in (fused, plain))
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g1, g2)
  # two embeddings for a pair loss
  pairs = jl.train.objective(lambda p, x: (x[0] @ p, x[1] @ p), jl.contrastive, unpack=True)
  x1, x2 = hidden[:16], hidden[16:]
  same = (labels[:16] == labels[16:]).astype(jnp.float32)
  value = pairs(jnp.eye(8), {"inputs": (x1, x2), "targets": same})
  np.testing.assert_allclose(float(value), float(jl.contrastive(x1, x2, same)), rtol=1e-6)
  with pytest.raises(TypeError, match=r"with unpack=True the model must return a tuple"):
    jl.train.objective(linear, jl.mse, unpack=True)(_zeros(1), {"inputs": jnp.ones((2, 1)), "targets": jnp.ones(2)})


def test_a_loss_without_targets_takes_only_the_model_outputs():
  embeddings = jax.random.normal(jax.random.key(0), (2, 8, 4))
  f = jl.train.objective(lambda p, x: (x * p, jnp.tile(jnp.arange(4), 2)), jl.ntxent, unpack=True)
  np.testing.assert_allclose(
    float(f(2.0, {"inputs": embeddings[0, :8]})),
    float(jl.ntxent(2.0 * embeddings[0, :8], jnp.tile(jnp.arange(4), 2))),
    rtol=1e-6,
  )
  with pytest.raises(ValueError, match=r"takes no targets after the model's 2 output\(s\)"):
    f(2.0, {"inputs": embeddings[0], "targets": jnp.zeros(8)})


def test_non_differentiable_leaves_are_carried_not_differentiated():
  batch, _ = _regression_data(n=32, outlier_fraction=0.0)
  params = {
    "w": jnp.zeros(1),
    "b": jnp.zeros(()),
    "step": jnp.array(7, jnp.int32),
    "mask": jnp.array([True]),
    "key": jax.random.key(0),
    "activation": jnp.tanh,  # a function: static
    "scale": 1.0,  # a Python number: static, as in Equinox
  }

  def model(p, x):
    return p["scale"] * p["activation"](x @ (p["w"] * p["mask"]) + p["b"])

  optimizer = optax.adamw(0.05, weight_decay=0.1)
  step = jl.train.make_step(jl.train.objective(model, jl.mse), optimizer)
  state = step.init(params)
  assert len(jax.tree.leaves(state[0].mu)) == 2  # adam's moments for w and b only
  new, state, loss = step(params, state, batch)
  new, state, loss2 = step(new, state, batch)
  assert float(loss2) < float(loss)
  assert new["step"].dtype == jnp.int32 and int(new["step"]) == 7 and bool(new["mask"][0])
  assert new["activation"] is jnp.tanh and new["scale"] == 1.0
  np.testing.assert_array_equal(jax.random.key_data(new["key"]), jax.random.key_data(params["key"]))
  assert float(new["w"][0]) != 0.0
  assert step._run._cache_size() == 1


def test_a_learned_option_lives_in_the_params():
  # A learned threshold, parametrised as exp(log_delta) as a temperature is; any traced option works the same way.
  batch, _ = _regression_data(n=64)
  params = {"w": jnp.ones(1), "b": jnp.zeros(()), "log_delta": jnp.log(jnp.float32(0.5))}
  delta = jl.train.learned(lambda p: jnp.exp(p["log_delta"]))
  f = jl.train.objective(linear, jl.huber, delta=delta)

  def by_hand(p):
    return jl.huber(linear(p, batch["inputs"]), batch["targets"], delta=jnp.exp(p["log_delta"]))

  (value, grads), (expected, expected_grads) = jax.value_and_grad(f)(params, batch), jax.value_and_grad(by_hand)(params)
  np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)
  assert float(grads["log_delta"]) != 0.0
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), grads, expected_grads)
  step = jl.train.make_step(f, optax.sgd(0.1))
  new, _, _ = step(params, step.init(params), batch)
  np.testing.assert_allclose(float(new["log_delta"]), float(params["log_delta"] - 0.1 * grads["log_delta"]), rtol=1e-6)


def test_checked_step_reports_a_bad_label_at_the_step_that_meets_it():
  x, y = _separable_data(seed=3, n=40, classes=3)
  affine = lambda params, x: x @ params["w"] + params["b"][None, :]
  batches = [{"inputs": x[8 * i : 8 * i + 8], "targets": jnp.asarray(y[8 * i : 8 * i + 8])} for i in range(5)]
  batches[2]["targets"] = batches[2]["targets"].at[3].set(7)  # class 7 of 3, in the third of five steps
  f = jl.train.objective(affine, jl.cross_entropy)
  optimizer = optax.adam(0.1)
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}

  unchecked = jl.train.make_step(f, optimizer)
  p, state = params, unchecked.init(params)
  losses = []
  for batch in batches:
    p, state, loss = unchecked(p, state, batch)
    losses.append(float(loss))
  assert np.isnan(losses[2]) and np.all(np.isfinite(losses[:2]))  # silently NaN, and the parameters after it

  checked = jl.train.make_step(f, optimizer, checked=True)
  p, state = params, checked.init(params)
  completed = 0
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss.cross_entropy: `labels` must be in \[0, 3\), found 7"):
    for batch in batches:
      p, state, loss = checked(p, state, batch)
      assert np.isfinite(float(loss))
      completed += 1
  assert completed == 2
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(p))  # the parameters of the last good step
  assert checked._run._cache_size() == 1  # one compiled step, checks included
  p, state, loss = checked(p, state, batches[3])  # a good batch after the bad one runs on
  assert np.isfinite(float(loss))


def test_checked_step_reports_an_invalid_traced_option():
  batch, _ = _regression_data(n=16)
  step = jl.train.make_step(jl.train.objective(linear, jl.huber), optax.sgd(0.1), checked=True)
  params = _zeros(1)
  step(params, step.init(params), {**batch, "delta": jnp.float32(1.0)})
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss.huber: `delta`"):
    step(params, step.init(params), {**batch, "delta": jnp.float32(-1.0)})
