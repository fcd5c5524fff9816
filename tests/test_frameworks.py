"""jl.train with the model libraries as their users write them: Flax NNX, Flax Linen and Equinox on load_digits.

Each library's MLP is trained through ``make_step`` to a target test accuracy, and
one step's gradients are compared with the library's own hand-written step.
"""

from __future__ import annotations

import functools

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import jaxloss as jl

STEPS = 150
TARGET_ACCURACY = 0.95  # a linear model reaches ~0.95 on this split; the MLPs reach ~0.98


@pytest.fixture(autouse=True)
def _standard_promotion():
  """Flax, Equinox and optax rely on standard dtype promotion (tests/conftest.py sets strict)."""
  with jax.numpy_dtype_promotion("standard"):
    yield


@pytest.fixture(scope="module")
def digits():
  data = load_digits()
  x = (data.data / 16).astype(np.float32)
  order = np.random.default_rng(0).permutation(len(x))
  train, test = order[:1400], order[1400:]
  batch = {"inputs": jnp.asarray(x[train]), "targets": jnp.asarray(data.target[train])}
  return batch, (jnp.asarray(x[test]), data.target[test])


def _accuracy(scores, labels):
  return float(np.mean(np.argmax(np.asarray(scores), axis=-1) == labels))


def _gradient_recorder() -> optax.GradientTransformation:
  """An optimizer whose state is the last gradient it was given (and whose updates are 0)."""
  return optax.GradientTransformation(
    lambda params: jax.tree.map(jnp.zeros_like, params),
    lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), grads),
  )


def _assert_trees_close(actual, expected, tolerance=1e-6):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    assert a.shape == e.shape and a.dtype == e.dtype
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, e = jax.random.key_data(a), jax.random.key_data(e)
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=tolerance, atol=tolerance)


# -- Flax NNX --------------------------------------------------------------------------------------------


class NnxMLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs, dropout=0.2):
    self.hidden = nnx.Linear(64, 32, rngs=rngs)
    self.norm = nnx.BatchNorm(32, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.out = nnx.Linear(32, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(self.dropout(jax.nn.relu(self.norm(self.hidden(x)))))


def test_nnx_mlp_with_dropout_and_batch_norm_trains_to_target_accuracy(digits):
  batch, (x_test, y_test) = digits
  model = NnxMLP(nnx.Rngs(0))
  step = jl.train.make_step(jl.train.objective(None, jl.cross_entropy), optax.adam(1e-2))
  opt_state = step.init(model)
  assert jax.tree.structure(opt_state) == jax.tree.structure(optax.adam(1e-2).init(nnx.state(model, nnx.Param)))
  mean_before = np.asarray(model.norm.mean[...])
  losses = []
  for _ in range(STEPS):
    model, opt_state, loss = step(model, opt_state, batch)
    losses.append(float(loss))
  assert losses[-1] < 0.2 * losses[0], losses[::30]
  # the state after each forward pass came back: the rng counter advanced once per step, batch statistics moved
  assert int(model.dropout.rngs.count[...]) == STEPS
  assert not np.allclose(model.norm.mean[...], mean_before)
  model.eval()
  assert _accuracy(model(x_test), y_test) >= TARGET_ACCURACY
  assert step._run._cache_size() == 1


def test_nnx_dropout_masks_differ_between_steps(digits):
  batch, _ = digits
  batch = {k: v[:64] for k, v in batch.items()}
  outputs = {}
  for rate in (0.0, 0.5):
    model = NnxMLP(nnx.Rngs(0), dropout=rate)
    model.norm.eval()  # batch statistics fixed: only dropout may change the outputs
    step = jl.train.make_step(jl.train.objective(None, jl.cross_entropy, aux=True), optax.sgd(0.0))
    opt_state = step.init(model)
    outputs[rate] = []
    for _ in range(3):
      model, opt_state, _, aux = step(model, opt_state, batch)  # the parameters do not move (learning rate 0)
      outputs[rate].append(np.asarray(aux["predictions"]))
  first, second, third = outputs[0.5]
  assert not np.allclose(first, second) and not np.allclose(second, third) and not np.allclose(first, third)
  np.testing.assert_array_equal(outputs[0.0][0], outputs[0.0][2])  # without dropout, the same outputs


def test_nnx_step_gradients_equal_nnx_value_and_grad(digits):
  batch, _ = digits
  model = NnxMLP(nnx.Rngs(1))
  reference = nnx.clone(model)  # same parameters, same rng state: the same dropout mask
  value, grads = nnx.jit(nnx.value_and_grad(lambda m, b: jl.cross_entropy(m(b["inputs"]), b["targets"])))(
    reference, batch
  )
  step = jl.train.make_step(jl.train.objective(None, jl.cross_entropy), _gradient_recorder())
  model, recorded, loss = step(model, step.init(model), batch)
  np.testing.assert_allclose(float(loss), float(value), rtol=1e-6)
  _assert_trees_close(recorded, grads)
  # both advanced the rng counter and the batch statistics alike
  _assert_trees_close(nnx.state(model, nnx.Not(nnx.Param)), nnx.state(reference, nnx.Not(nnx.Param)))


# -- Equinox ---------------------------------------------------------------------------------------------


def _per_example(model, x):
  return jax.vmap(model)(x)


def test_equinox_mlp_trains_to_target_accuracy(digits):
  batch, (x_test, y_test) = digits
  model = eqx.nn.MLP(64, 10, 32, 1, key=jax.random.key(0))  # its activation functions are leaves too
  optimizer = optax.adam(1e-2)
  step = jl.train.make_step(jl.train.objective(_per_example, jl.cross_entropy), optimizer)
  opt_state = step.init(model)
  assert jax.tree.structure(opt_state) == jax.tree.structure(optimizer.init(eqx.filter(model, eqx.is_inexact_array)))
  losses = []
  for _ in range(STEPS):
    model, opt_state, loss = step(model, opt_state, batch)
    losses.append(float(loss))
  assert isinstance(model, eqx.nn.MLP) and model.activation is jax.nn.relu
  assert losses[-1] < 0.1 * losses[0], losses[::30]
  assert _accuracy(_per_example(model, x_test), y_test) >= TARGET_ACCURACY
  assert step._run._cache_size() == 1


def test_equinox_step_gradients_equal_filter_value_and_grad(digits):
  batch, _ = digits
  model = eqx.nn.MLP(64, 10, 32, 2, key=jax.random.key(1))

  @eqx.filter_value_and_grad
  def reference(m):
    return jl.cross_entropy(jax.vmap(m)(batch["inputs"]), batch["targets"])

  value, grads = reference(model)
  step = jl.train.make_step(jl.train.objective(_per_example, jl.cross_entropy), _gradient_recorder())
  _, recorded, loss = step(model, step.init(model), batch)
  np.testing.assert_allclose(float(loss), float(value), rtol=1e-6)
  _assert_trees_close(recorded, grads)


def test_equinox_dropout_key_routed_to_the_model(digits):
  batch, _ = digits
  batch = {k: v[:32] for k, v in batch.items()}

  class Net(eqx.Module):
    mlp: eqx.nn.MLP
    dropout: eqx.nn.Dropout

    def __call__(self, x, *, key):
      return self.mlp(self.dropout(x, key=key))

  def apply(model, x, dropout_key):
    return jax.vmap(model)(x, key=jax.random.split(dropout_key, len(x)))

  model = Net(eqx.nn.MLP(64, 10, 16, 1, key=jax.random.key(0)), eqx.nn.Dropout(0.5))
  step = jl.train.make_step(
    jl.train.objective(apply, jl.cross_entropy, model_keys=("dropout_key",), aux=True), optax.sgd(0.0)
  )
  opt_state = step.init(model)
  out = [step(model, opt_state, {**batch, "dropout_key": jax.random.key(i)})[3]["predictions"] for i in (0, 0, 1)]
  np.testing.assert_array_equal(out[0], out[1])
  assert not np.allclose(out[0], out[2])


# -- Flax Linen ------------------------------------------------------------------------------------------


class LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(32)(x)))
    return nn.Dense(10)(nn.Dropout(0.2, deterministic=not train)(x))


def test_linen_mlp_with_rngs_and_mutable_batch_stats_trains_to_target_accuracy(digits):
  batch, (x_test, y_test) = digits
  model = LinenMLP()
  variables = model.init(jax.random.key(0), batch["inputs"][:2], train=False)
  objective = jl.train.objective(model.apply, jl.cross_entropy, model_keys=("rngs",), mutable=("batch_stats",))
  optimizer = optax.adam(1e-2)
  step = jl.train.make_step(objective, optimizer)
  opt_state = step.init(variables)
  assert jax.tree.structure(opt_state) == jax.tree.structure(optimizer.init(variables["params"]))
  stats_before = variables["batch_stats"]
  key = jax.random.key(1)
  losses = []
  for i in range(STEPS):
    variables, opt_state, loss = step(variables, opt_state, {**batch, "rngs": {"dropout": jax.random.fold_in(key, i)}})
    losses.append(float(loss))
  assert set(variables) == {"params", "batch_stats"}
  assert not np.allclose(variables["batch_stats"]["BatchNorm_0"]["mean"], stats_before["BatchNorm_0"]["mean"])
  assert losses[-1] < 0.2 * losses[0], losses[::30]
  assert _accuracy(model.apply(variables, x_test, train=False), y_test) >= TARGET_ACCURACY
  assert step._run._cache_size() == 1


def test_linen_step_gradients_equal_jax_grad_of_apply(digits):
  batch, _ = digits
  model = LinenMLP()
  variables = model.init(jax.random.key(2), batch["inputs"][:2], train=False)
  rngs = {"dropout": jax.random.key(3)}

  def reference(params):
    scores, updates = model.apply({**variables, "params": params}, batch["inputs"], rngs=rngs, mutable=["batch_stats"])
    return jl.cross_entropy(scores, batch["targets"]), updates

  (value, updates), grads = jax.value_and_grad(reference, has_aux=True)(variables["params"])
  objective = jl.train.objective(model.apply, jl.cross_entropy, model_keys=("rngs",), mutable=("batch_stats",))
  step = jl.train.make_step(objective, _gradient_recorder())
  new, recorded, loss = step(variables, step.init(variables), {**batch, "rngs": rngs})
  np.testing.assert_allclose(float(loss), float(value), rtol=1e-6)
  _assert_trees_close(recorded, grads)
  _assert_trees_close(new["batch_stats"], updates["batch_stats"])


def test_linen_apply_in_functools_partial_is_recognised(digits):
  batch, _ = digits
  batch = {k: v[:64] for k, v in batch.items()}
  model = LinenMLP()
  variables = model.init(jax.random.key(2), batch["inputs"][:2], train=False)
  evaluation = jl.train.objective(functools.partial(model.apply, train=False), jl.cross_entropy)
  step = jl.train.make_step(evaluation, _gradient_recorder())
  new, recorded, loss = step(variables, step.init(variables), batch)
  assert jax.tree.structure(recorded) == jax.tree.structure(variables["params"])  # only "params" is trained
  _assert_trees_close(new["batch_stats"], variables["batch_stats"])  # nothing mutable: statistics unchanged
  np.testing.assert_allclose(
    float(loss), float(jl.cross_entropy(model.apply(variables, batch["inputs"], train=False), batch["targets"])), 1e-6
  )
