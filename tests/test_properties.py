"""Property-based checks over the whole registry (hypothesis): random shapes, dtypes, values, masks and weights.

For every loss family, hypothesis draws a registry case, a batch shape (size-0
and size-1 axes included), an input dtype, a pool of values (the case's ordinary
inputs, or one of its extreme inputs: huge, tiny, zero, exact kinks), a boolean
``where`` (sometimes all False) and weights (sometimes with zeros, and with NaN
where ``where`` is False). Every example must give a finite value and gradient,
the same value jitted and eager, ``sum(reduction="none") == reduction="sum"``,
and exactly zero gradients on masked entries. The shapes come from a small
fixed set so that the compiled programs stay few (this module is budgeted at
under a minute of the suite).
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import all_cases

CASES = all_cases()
FAMILIES = sorted({case.fn.__module__.rsplit(".", 1)[-1] for case in CASES})
BATCHES = [(0, 2), (1, 2), (3, 2)]
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]

SETTINGS = settings(
  max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _jax(args, dtype):
  return tuple(
    jnp.asarray(a, dtype) if np.issubdtype(np.asarray(a).dtype, np.floating) else jnp.asarray(a) for a in args
  )


def _where_shape(case, args, loss_shape):
  if case.where_on_items:
    return np.shape(args[case.items])
  return np.shape(args[0]) if case.where_on_inputs else loss_shape


def _weights_shape(case, args, loss_shape):
  return np.shape(args[0]) if case.where_on_inputs else loss_shape


@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_random_inputs_keep_the_promises(family, data):
  case = data.draw(st.sampled_from([c for c in CASES if c.fn.__module__.endswith(family)]), label="case")
  batch = data.draw(st.sampled_from(BATCHES), label="batch")
  dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
  rng = np.random.default_rng(zlib.crc32(f"{case.name}/{batch}".encode()))
  pools = [case.make(rng, batch), *case.extremes(rng, batch)]
  args = _jax(pools[data.draw(st.integers(0, len(pools) - 1), label="pool")], dtype)
  kw = {} if case.array_kwargs is None else {k: jnp.asarray(v) for k, v in case.array_kwargs(rng, batch).items()}

  def call(*a, **options):
    return case.fn(*a, **case.kwargs, **kw, **options)

  loss_shape = jax.eval_shape(lambda *a: call(*a, reduction="none"), *args).shape  # traced, not compiled
  where_shape = _where_shape(case, args, loss_shape)
  mask_kind = data.draw(st.sampled_from(["none", "random", "all-false"]), label="where")
  mask = None
  if mask_kind == "random":
    mask = rng.uniform(size=where_shape) < 0.6
  elif mask_kind == "all-false":
    mask = np.zeros(where_shape, bool)
  weights = None
  if data.draw(st.booleans(), label="weights"):
    weights = rng.uniform(0.0, 2.0, _weights_shape(case, args, loss_shape))
    weights[rng.uniform(size=weights.shape) < 0.2] = 0.0
    if mask is not None and not case.where_on_items and mask.shape == weights.shape:
      weights = np.where(mask, weights, np.nan)  # masked means masked
  options = {}
  if mask is not None:
    options["where"] = jnp.asarray(mask)
  if weights is not None:
    options["weights"] = jnp.asarray(weights, jnp.float32)

  # One compiled program per example for the jitted side (values and gradient); arrays enter it as arguments.
  @jax.jit
  def jitted(args, kw, options):
    def loss(*a, **more):
      return case.fn(*a, **case.kwargs, **kw, **options, **more)

    def objective(*diff_args):
      full = list(args)
      for i, a in zip(case.diff, diff_args, strict=True):
        full[i] = a
      return loss(*full)

    grads = jax.grad(objective, argnums=tuple(range(len(case.diff))))(*(args[i] for i in case.diff))
    return loss(*args, reduction="sum"), loss(*args, reduction="mean"), jnp.sum(loss(*args, reduction="none")), grads

  total, mean, unreduced_sum, grads = jitted(args, kw, options)
  assert np.isfinite(float(total)) and np.isfinite(float(mean)), (case.name, float(total), float(mean))
  np.testing.assert_allclose(float(unreduced_sum), float(total), rtol=2e-5, atol=1e-5)
  with jax.disable_jit():
    eager = call(*args, reduction="sum", **options)
  np.testing.assert_allclose(float(eager), float(total), rtol=2e-5, atol=1e-5)

  for i, g in zip(case.diff, grads, strict=True):
    g = np.asarray(g.astype(jnp.float32))
    if dtype != jnp.float16:  # float16 gradients overflow to inf by design (see the README)
      assert np.all(np.isfinite(g)), (case.name, i)
    if mask is not None and i not in case.shared and g.shape[: mask.ndim] == mask.shape:
      masked = ~np.broadcast_to(mask.reshape(mask.shape + (1,) * (g.ndim - mask.ndim)), g.shape)
      assert np.all(g[masked] == 0), (case.name, i, "masked entries must get exactly zero gradient")
