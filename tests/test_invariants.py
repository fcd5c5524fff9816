"""The invariants every public loss holds, run over the whole registry.

jit == eager, vmap == batched, ``where`` == slicing, ``sum(none) == sum``,
weighted mean = sum(w*l)/sum(w), all-masked gives 0 with a zero gradient, masked
NaN/inf inputs get a zero gradient, finite values and gradients at extreme
inputs, half precision equal to float32 on the same values, second-order
gradient checks in float64 (forward and reverse mode), finite Hessians, no
retracing.
"""

from __future__ import annotations

import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss as jl
from registry import all_cases

CASES = all_cases()
BATCH = (5, 2)


# Module scope: pytest runs every test of one case together (they share its compiled programs), and the
# teardown frees the programs once the process is large (conftest.py), so a worker stays small.
@pytest.fixture(params=CASES, ids=str, scope="module")
def case(request, free_memory_if_large):
  yield request.param
  free_memory_if_large()


def _rng(case, salt=0):
  return np.random.default_rng(zlib.crc32(f"{case.name}/{salt}".encode()))


def _to_jax(args, dtype=jnp.float32):
  """NumPy inputs to JAX arrays: real-valued ones in ``dtype``, integer/bool ones as they are."""
  out = []
  for a in args:
    a = np.asarray(a)
    out.append(jnp.asarray(a, dtype) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a))
  return tuple(out)


def _inputs(case, batch=BATCH, dtype=jnp.float32, salt=0):
  rng = _rng(case, salt)
  args = _to_jax(case.make(rng, batch), dtype)
  array_kwargs = {}
  if case.array_kwargs is not None:
    array_kwargs = {k: jnp.asarray(v) for k, v in case.array_kwargs(rng, batch).items()}
  return args, array_kwargs


def _call(case, args, array_kwargs, **kw):
  return case.fn(*args, **case.kwargs, **array_kwargs, **kw)


def _where_shape(case, args, loss_shape):
  if case.where_on_items:
    return np.shape(args[case.items])
  return np.shape(args[0]) if case.where_on_inputs else loss_shape


def _mask_shape(case, args, loss_shape):
  """A mask over the leading batch axis, shaped to broadcast where ``where`` applies."""
  shape = _where_shape(case, args, loss_shape)
  return (shape[0],) + (1,) * (len(shape) - 1)


def _weights_shape(case, args, loss_shape):
  return np.shape(args[0]) if case.where_on_inputs else loss_shape


def _grad(case, args, array_kwargs, **kw):
  """Gradient of the (scalar) loss with respect to every differentiable argument, as one compiled program."""
  arrays = {k: v for k, v in kw.items() if isinstance(v, jax.Array)}
  static = tuple(sorted((k, v) for k, v in kw.items() if k not in arrays))
  # NumPy options (class weights) enter as arguments too: traced as constants inside the outer program, they left
  # the loss's own jit a cache entry that a later call under jax.enable_x64 matched with float32 buffers.
  numpy_kwargs = {k: v for k, v in case.kwargs.items() if isinstance(v, np.ndarray)}
  return _jitted_grad(case, static)(tuple(args), {**array_kwargs, **numpy_kwargs}, arrays)


# A case's gradient programs, kept for the tests of the case that call them on the same shapes (compiled once).
_GRADS: dict[tuple[str, tuple[tuple[str, object], ...]], object] = {}


def _jitted_grad(case, static):
  key = (case.name, static)
  if key not in _GRADS:

    def grad(args, array_kwargs, arrays):
      def f(*diff_args):
        full = list(args)
        for i, a in zip(case.diff, diff_args, strict=True):
          full[i] = a
        options = {**case.kwargs, **array_kwargs, **dict(static), **arrays}
        return case.fn(*full, **options)

      return jax.grad(f, argnums=tuple(range(len(case.diff))))(*(args[i] for i in case.diff))

    _GRADS[key] = jax.jit(grad)
  return _GRADS[key]


def _assert_close(actual, desired, rtol=2e-5, atol=1e-6):
  np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(desired, np.float64), rtol, atol)


def _slice_tree(tree, index):
  return jax.tree.map(lambda a: a[index], tree)


def _slice_inputs(case, args, array_kwargs, index):
  """Examples ``index`` of the inputs; shared arguments (a weight matrix) stay whole."""
  sliced_args = tuple(a if i in case.shared else a[index] for i, a in enumerate(args))
  return sliced_args, _slice_tree(array_kwargs, index)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_jit_matches_eager(case, reduction):
  args, kw = _inputs(case)
  jitted = _call(case, args, kw, reduction=reduction)
  with jax.disable_jit():
    eager = _call(case, args, kw, reduction=reduction)
  _assert_close(jitted, eager)
  if reduction != "none":
    grads = jax.jit(lambda *a: _grad(case, a, kw, reduction=reduction))(*args)
    with jax.disable_jit():
      eager_grads = _grad(case, args, kw, reduction=reduction)
    jax.tree.map(_assert_close, grads, eager_grads)


def test_unchecked_calls_stage_no_effects(case):
  """Outside jl.checked a loss has no runtime checks in its jaxpr: an effect would take
  every call (and every user function that calls the loss) off JAX's fast dispatch path."""
  args, kw = _inputs(case)
  assert not jax.make_jaxpr(lambda *a: _call(case, a, kw))(*args).effects
  assert not jax.make_jaxpr(lambda *a: _grad(case, a, kw))(*args).effects


def test_no_retrace_on_same_shapes(case):
  args, kw = _inputs(case)
  loss_shape = _call(case, args, kw, reduction="none").shape
  weights = jnp.ones(_weights_shape(case, args, loss_shape))
  _call(case, args, kw, weights=weights)
  before = case.fn._jaxloss_cache_size()
  other_args, other_kw = _inputs(case, salt=1)
  _call(case, other_args, other_kw, weights=2 * weights)
  assert case.fn._jaxloss_cache_size() == before

  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def outer(args, kw):
    return _call(case, args, kw)

  outer(args, kw)
  outer(other_args, other_kw)


def test_vmap_matches_loop(case):
  args, kw = _inputs(case)
  for reduction in ("none", "mean"):
    in_axes = (tuple(None if i in case.shared else 0 for i in range(len(args))), 0)
    vmapped = jax.vmap(lambda a, k, r=reduction: _call(case, a, k, reduction=r), in_axes=in_axes)(args, kw)
    looped = [_call(case, *_slice_inputs(case, args, kw, i), reduction=reduction) for i in range(BATCH[0])]
    _assert_close(vmapped, np.stack(looped))


def test_where_matches_slicing_and_masks_nan(case):
  args, kw = _inputs(case)
  loss_shape = _call(case, args, kw, reduction="none").shape
  keep = np.array([True, False, True, True, False])
  mask = jnp.asarray(keep.reshape(_mask_shape(case, args, loss_shape)))
  # Masked rows of every differentiable per-example input hold NaN or inf: they must not leak.
  poisoned = list(args)
  for n, i in enumerate(case.diff):
    if i not in case.shared:
      poisoned[i] = args[i].at[~keep].set(jnp.nan if n % 2 == 0 else jnp.inf)
  # So do the weights: masked means masked, a NaN weight under a False `where` included.
  weights_shape = _weights_shape(case, args, loss_shape)
  kept_rows = np.broadcast_to(keep.reshape((5,) + (1,) * (len(weights_shape) - 1)), weights_shape)
  nan_weights = jnp.asarray(np.where(kept_rows, 1.0, np.nan), jnp.float32)
  sliced_args, sliced_kw = _slice_inputs(case, args, kw, keep)
  for reduction in ("mean", "sum"):
    _assert_close(
      _call(case, poisoned, kw, reduction=reduction, where=mask, weights=nan_weights),
      _call(case, sliced_args, sliced_kw, reduction=reduction),
    )
    grads = _grad(case, poisoned, kw, reduction=reduction, where=mask, weights=nan_weights)
    sliced_grads = _grad(case, sliced_args, sliced_kw, reduction=reduction)
    for i, g, sg in zip(case.diff, grads, sliced_grads, strict=True):
      if i in case.shared:
        _assert_close(g, sg)
        continue
      assert np.all(np.asarray(g)[~keep] == 0), "masked entries must get exactly zero gradient"
      _assert_close(np.asarray(g)[keep], sg)
  unreduced = np.asarray(_call(case, poisoned, kw, reduction="none", where=mask))
  if not case.where_on_inputs:
    assert np.all(unreduced[~keep] == 0), "masked entries of reduction='none' must be exactly 0"


def test_none_sums_to_sum_and_weighted_mean(case):
  args, kw = _inputs(case)
  rng = _rng(case, 2)
  loss_shape = _call(case, args, kw, reduction="none").shape
  weights = jnp.asarray(rng.uniform(0.5, 2.0, _weights_shape(case, args, loss_shape)), jnp.float32)
  mask = jnp.asarray(rng.uniform(size=_where_shape(case, args, loss_shape)) < 0.7)
  options = {"weights": weights, "where": mask}
  _assert_close(
    jnp.sum(_call(case, args, kw, reduction="none", **options)),
    _call(case, args, kw, reduction="sum", **options),
  )
  if not case.where_on_inputs:
    per_example = np.asarray(_call(case, args, kw, reduction="none"), np.float64)
    w = np.asarray(weights, np.float64)
    if case.separable:
      w = w * np.asarray(mask)
    else:
      # Masking changes the other entries' losses, so the per-example losses above do not apply.
      options = {"weights": weights}
    count = w if case.count_weights is None else w * np.asarray(case.count_weights(args), np.float64)
    _assert_close(_call(case, args, kw, reduction="mean", **options), np.sum(w * per_example) / np.sum(count))


def test_all_masked_is_zero_with_zero_gradient(case):
  args, kw = _inputs(case)
  loss_shape = _call(case, args, kw, reduction="none").shape
  nothing = jnp.zeros(_mask_shape(case, args, loss_shape), bool)
  poisoned = list(args)
  for i in case.diff:
    if i not in case.shared:
      poisoned[i] = jnp.full_like(args[i], jnp.nan)
  for reduction in ("mean", "sum"):
    assert float(_call(case, poisoned, kw, reduction=reduction, where=nothing)) == 0.0
    for g in _grad(case, poisoned, kw, reduction=reduction, where=nothing):
      assert np.all(np.asarray(g) == 0)


def test_finite_at_extreme_inputs(case):
  rng = _rng(case, 3)
  _, kw = _inputs(case)
  for raw in case.extremes(rng, BATCH):
    args = _to_jax(raw)
    value = _call(case, args, kw)
    chex.assert_tree_all_finite(value)
    chex.assert_tree_all_finite(_grad(case, args, kw))


def test_hessian_is_finite(case):
  args, kw = _inputs(case, batch=(2, 2))
  rng = _rng(case, 4)
  points = [args, *(_to_jax(raw) for raw in case.extremes(rng, (2, 2)))]
  i = case.diff[0]
  hessian = jax.hessian if case.forward_mode else lambda f: jax.jacrev(jax.jacrev(f))

  @jax.jit  # one program for every point (they share shapes)
  def hessian_at(point, kw):
    def f(x):
      full = list(point)
      full[i] = x
      return _call(case, full, kw)

    return hessian(f)(point[i])

  for point in points:
    chex.assert_tree_all_finite(hessian_at(tuple(point), kw))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bf16", "f16"])
def test_half_precision_matches_float32(case, dtype):
  args, kw = _inputs(case)
  half = tuple(a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args)
  upcast = tuple(a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in half)
  for reduction in ("mean", "none"):
    out = _call(case, half, kw, reduction=reduction)
    assert out.dtype == jnp.float32, "half-precision inputs are computed and returned in float32"
    _assert_close(out, _call(case, upcast, kw, reduction=reduction), rtol=1e-5)


def test_check_grads_float64(case):
  with jax.enable_x64(True):
    args, kw = _inputs(case, batch=(3, 2), dtype=jnp.float64)
    rng = _rng(case, 5)
    loss_shape = _call(case, args, kw, reduction="none").shape
    assert _call(case, args, kw).dtype == jnp.float64
    weights = jnp.asarray(rng.uniform(0.5, 2.0, _weights_shape(case, args, loss_shape)))
    where_shape = _where_shape(case, args, loss_shape)
    mask = jnp.asarray(np.arange(np.prod(where_shape)).reshape(where_shape) % 3 != 1)

    def f(*diff_args):
      full = list(args)
      for i, a in zip(case.diff, diff_args, strict=True):
        full[i] = a
      return _call(case, full, kw, weights=weights, where=mask)

    primals = tuple(args[i] for i in case.diff)
    if not case.forward_mode:
      check_grads(f, primals, order=1, modes=("rev",))
      with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(f, primals, primals)
      return
    # First order in both modes: second derivatives are checked finite by test_hessian_is_finite and against
    # references where a family has a second-order rule of its own (cross_entropy, ctc, the fused head); order 2 here
    # was a third of the suite's time.
    check_grads(f, primals, order=1, modes=("fwd", "rev"))


# Numeric options are data: a Python number is a constant, an array or tracer a traced input.
OPTION_CASES = [c for c in CASES if c.options]


@pytest.fixture(params=OPTION_CASES, ids=str, scope="module")
def option_case(request, free_memory_if_large):
  yield request.param
  free_memory_if_large()


def test_traced_options_match_constants_vmap_grad_and_compile_once(option_case):
  """For every numeric option of the loss, all at once (so the compiles are few):
  constant == traced (value and gradients), vmap over the options == separate
  calls, gradient with respect to each option == central finite differences
  (float64), and five traced values compile one program."""
  case = option_case
  names = sorted(case.options)
  values = [float(case.options[n].value) for n in names]
  with jax.enable_x64(True):
    args, kw = _inputs(case, batch=(3, 2), dtype=jnp.float64)
    diff = [args[i] for i in case.diff]

    def traced(options, *diff_args):
      full = list(args)
      for i, a in zip(case.diff, diff_args, strict=True):
        full[i] = a
      return _call(case, full, kw, **dict(zip(names, options, strict=True)))

    def constant(*diff_args):
      return traced(values, *diff_args)

    as_arrays = [jnp.asarray(v, jnp.float64) for v in values]
    value, grads = jax.jit(jax.value_and_grad(traced, argnums=tuple(range(len(diff) + 1))))(as_arrays, *diff)
    option_grads, arg_grads = grads[0], grads[1:]
    const_value, const_grads = jax.value_and_grad(constant, argnums=tuple(range(len(diff))))(*diff)
    _assert_close(value, const_value, rtol=1e-10, atol=1e-12)
    jax.tree.map(lambda a, b: _assert_close(a, b, rtol=1e-9, atol=1e-12), arg_grads, const_grads)

    forward = jax.jit(lambda options: traced(options, *diff))
    for k, name in enumerate(names):
      if not case.options[name].differentiable:
        continue
      step = 1e-6 * max(1.0, abs(values[k]))
      shifted = [
        [jnp.asarray(v + (s * step if j == k else 0.0), jnp.float64) for j, v in enumerate(values)] for s in (1, -1)
      ]
      numeric = (forward(shifted[0]) - forward(shifted[1])) / (2 * step)
      _assert_close(option_grads[k], numeric, rtol=1e-5, atol=1e-7)

    spreads = [case.options[n].spread for n in names]
    stacked = [
      jnp.asarray([v * (1 + s * j) for j in range(3)], jnp.float64) for v, s in zip(values, spreads, strict=True)
    ]
    mapped = jax.jit(jax.vmap(forward))(stacked)
    looped = [forward([x[j] for x in stacked]) for j in range(3)]
    _assert_close(mapped, np.stack(looped), rtol=1e-10, atol=1e-12)

    full_args = list(args)
    before = None
    for j in range(5):
      options = {
        n: jnp.asarray(v * (1 + s * j / 10), jnp.float64) for n, v, s in zip(names, values, spreads, strict=True)
      }
      case.fn(*full_args, **case.kwargs, **kw, **options)
      if before is None:
        before = case.fn._jaxloss_cache_size()
    assert case.fn._jaxloss_cache_size() == before, "a traced option must not recompile for a new value"


def test_checked_rejects_invalid_traced_options(option_case):
  case = option_case
  args, kw = _inputs(case)
  names = sorted(case.options)
  valid = {n: jnp.asarray(case.options[n].value, jnp.float32) for n in names}
  checked = jl.checked(case.fn)
  checked(*args, **case.kwargs, **kw, **valid)  # valid traced values pass
  for name in names:
    for bad in (np.nan, case.options[name].invalid):
      if bad is None:
        continue
      with pytest.raises(checkify.JaxRuntimeError, match=rf"`{name}` must be"):
        checked(*args, **case.kwargs, **kw, **{**valid, name: jnp.asarray(bad, jnp.float32)})
