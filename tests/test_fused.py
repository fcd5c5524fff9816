"""linear_cross_entropy: values and gradients against explicit logits through torch
in float64, the streaming edge cases (chunk sizes, leading batch dimensions), the
absence of [tokens, vocab] buffers in the compiled program, and its errors."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.experimental import checkify

import jaxloss as jl

IGNORE = -100


def _problem(seed, batch, d, v, *, ignore=False, bias=True):
  rng = np.random.default_rng(seed)
  hidden = rng.normal(size=(*batch, d))
  weight = rng.normal(size=(v, d)) / np.sqrt(d)
  labels = rng.integers(0, v, size=batch)
  if ignore:
    labels = np.where(rng.uniform(size=batch) < 0.3, IGNORE, labels)
  return {
    "hidden": hidden,
    "weight": weight,
    "labels": labels,
    "bias": rng.normal(size=(v,)) if bias else None,
    "weights": rng.uniform(0.5, 2.0, size=batch),
    "where": rng.uniform(size=batch) < 0.8,
  }


def torch_reference(p, *, reduction, label_smoothing=0.0, ignore_index=None, z_loss=0.0, use_weights=False):
  """Value and gradients (hidden, weight, bias) in float64 from explicit logits and F.cross_entropy."""
  hidden = torch.tensor(p["hidden"], dtype=torch.float64, requires_grad=True)
  weight = torch.tensor(p["weight"], dtype=torch.float64, requires_grad=True)
  bias = None if p["bias"] is None else torch.tensor(p["bias"], dtype=torch.float64, requires_grad=True)
  labels = torch.tensor(p["labels"], dtype=torch.int64)
  logits = F.linear(hidden, weight, bias)
  per_token = F.cross_entropy(
    logits.reshape(-1, logits.shape[-1]),
    labels.reshape(-1),
    reduction="none",
    label_smoothing=label_smoothing,
    ignore_index=IGNORE if ignore_index is None else ignore_index,
  ).reshape(labels.shape)
  per_token = per_token + z_loss * torch.logsumexp(logits, dim=-1) ** 2
  keep = torch.tensor(p["where"]) if p["where"] is not None else torch.ones(labels.shape, dtype=torch.bool)
  if ignore_index is not None:
    keep = keep & (labels != ignore_index)
  w = torch.tensor(p["weights"], dtype=torch.float64) if use_weights else torch.ones(labels.shape, dtype=torch.float64)
  w = torch.where(keep, w, torch.zeros_like(w))
  weighted = torch.where(keep, per_token, torch.zeros_like(per_token)) * w
  value = {"none": weighted, "sum": weighted.sum(), "mean": weighted.sum() / w.sum()}[reduction]
  value.sum().backward()
  grads = [hidden.grad.numpy(), weight.grad.numpy()] + ([] if bias is None else [bias.grad.numpy()])
  return value.detach().numpy(), grads


def _ours(p, dtype, *, reduction, use_weights=False, use_where=False, **options):
  args = [jnp.asarray(p[k], dtype) for k in ("hidden", "weight")]
  bias = None if p["bias"] is None else jnp.asarray(p["bias"], dtype)
  labels = jnp.asarray(p["labels"])
  extra = {}
  if use_weights:
    extra["weights"] = jnp.asarray(p["weights"], dtype)
  if use_where:
    extra["where"] = jnp.asarray(p["where"])

  def f(hidden, weight, bias):
    out = jl.linear_cross_entropy(hidden, weight, labels, bias=bias, reduction=reduction, **options, **extra)
    return jnp.sum(out), out

  argnums = (0, 1) if bias is None else (0, 1, 2)
  grads, value = jax.grad(f, argnums=argnums, has_aux=True)(*args, bias)
  return value, grads


# (seed, batch, D, V, chunk_size, options): chunks that divide V and that do not,
# a single block, a chunk larger than V, the automatic choice, leading batch
# dimensions; bias on even seeds; every option alone and all together.
CASES = [
  (0, (9,), 5, 13, 4, {}),
  (1, (2, 3), 8, 32, 8, {"label_smoothing": 0.2}),
  (2, (3, 2, 2), 3, 17, 17, {"ignore_index": IGNORE}),
  (3, (6,), 4, 10, 64, {"z_loss": 1e-3}),
  (4, (2, 5), 6, 300, None, {"label_smoothing": 0.1, "ignore_index": IGNORE, "z_loss": 1e-2}),
  (5, (4, 1, 3), 7, 11, 3, {"label_smoothing": 1.0, "ignore_index": 0}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}-{c[1]}-D{c[2]}-V{c[3]}-chunk{c[4]}-{'-'.join(c[5])}")
def test_matches_torch_in_float64_and_float32(case):
  seed, batch, d, v, chunk, options = case
  p = _problem(seed, batch, d, v, ignore=options.get("ignore_index") == IGNORE, bias=seed % 2 == 0)
  for reduction, use_weights, use_where in (("mean", True, True), ("sum", False, True), ("none", True, False)):
    if not use_where:
      p = {**p, "where": None}
    want, want_grads = torch_reference(p, reduction=reduction, use_weights=use_weights, **options)
    kw = {"reduction": reduction, "use_weights": use_weights, "use_where": use_where, "chunk_size": chunk, **options}
    with jax.enable_x64(True):
      value, grads = _ours(p, jnp.float64, **kw)
      assert value.dtype == jnp.float64
      np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12)
      for g, wg in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(g, wg, rtol=1e-10, atol=1e-12)
    value, grads = _ours(p, jnp.float32, **kw)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)
    for g, wg in zip(grads, want_grads, strict=True):
      assert g.dtype == jnp.float32
      np.testing.assert_allclose(g, wg, rtol=1e-5, atol=1e-6)


def test_reverse_over_reverse_matches_explicit_logits():
  p = _problem(7, (4,), 3, 10)
  labels = jnp.asarray(p["labels"])

  def naive(hidden, weight):
    logits = hidden @ weight.T
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

  with jax.enable_x64(True):
    hidden, weight = jnp.asarray(p["hidden"]), jnp.asarray(p["weight"])
    fused = lambda h, w: jl.linear_cross_entropy(h, w, labels, chunk_size=3)
    for argnum in (0, 1):
      want = jax.hessian(naive, argnums=argnum)(hidden, weight)
      got = jax.jacrev(jax.jacrev(fused, argnums=argnum), argnums=argnum)(hidden, weight)
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_forward_mode_raises():
  p = _problem(8, (3,), 2, 5)
  hidden, weight, labels = jnp.asarray(p["hidden"], jnp.float32), jnp.asarray(p["weight"], jnp.float32), p["labels"]
  with pytest.raises(TypeError, match="forward-mode"):
    jax.jvp(lambda h: jl.linear_cross_entropy(h, weight, labels), (hidden,), (hidden,))


def test_dense_kernel_transpose():
  """A [D, V] kernel passed as ``weight=kernel.T`` gets its gradient in its own layout."""
  p = _problem(9, (6,), 4, 9, bias=False)
  kernel = jnp.asarray(p["weight"].T, jnp.float32)
  labels = jnp.asarray(p["labels"])
  hidden = jnp.asarray(p["hidden"], jnp.float32)
  grad = jax.jit(jax.grad(lambda k: jl.linear_cross_entropy(hidden, k.T, labels, chunk_size=4)))(kernel)
  _, (_, want) = torch_reference({**p, "where": None}, reduction="mean")
  np.testing.assert_allclose(grad, want.T, rtol=1e-5, atol=1e-6)


def test_all_ignored_mean_is_zero_with_zero_gradient():
  p = _problem(10, (5,), 3, 6)
  hidden, weight = jnp.asarray(p["hidden"], jnp.float32), jnp.asarray(p["weight"], jnp.float32)
  labels = jnp.full((5,), IGNORE)
  loss = lambda h, w: jl.linear_cross_entropy(h, w, labels, ignore_index=IGNORE, chunk_size=4)
  assert float(loss(hidden, weight)) == 0.0
  for g in jax.grad(loss, argnums=(0, 1))(hidden, weight):
    assert np.all(np.asarray(g) == 0)


def test_half_precision_accumulates_in_float32():
  p = _problem(11, (16,), 32, 50)
  labels = jnp.asarray(p["labels"])
  half = [jnp.asarray(p[k], jnp.bfloat16) for k in ("hidden", "weight", "bias")]
  value = jl.linear_cross_entropy(half[0], half[1], labels, bias=half[2], chunk_size=16)
  assert value.dtype == jnp.float32
  upcast = [x.astype(jnp.float32) for x in half]
  want = jl.linear_cross_entropy(upcast[0], upcast[1], labels, bias=upcast[2], chunk_size=16)
  np.testing.assert_allclose(value, want, rtol=1e-6)
  grads = jax.grad(lambda h, w: jl.linear_cross_entropy(h, w, labels, chunk_size=16), argnums=(0, 1))(*half[:2])
  assert [g.dtype for g in grads] == [jnp.bfloat16, jnp.bfloat16]


def _buffer_shapes(hlo_text):
  return {tuple(int(n) for n in dims.split(",")) for dims in re.findall(r"f32\[([0-9,]+)\]", hlo_text)}


def test_compiled_value_and_grad_holds_no_tokens_by_vocab_buffer():
  tokens, d, vocab, chunk = 2048, 16, 16384, 64  # mean: blocks of 64 tokens against the whole vocabulary
  logits_bytes = tokens * vocab * 4  # 128 MiB, against 1.2 MiB of inputs

  def loss(hidden, weight, bias, labels):
    return jl.linear_cross_entropy(
      hidden, weight, labels, bias=bias, chunk_size=chunk, label_smoothing=0.1, z_loss=1e-4
    )

  shapes = (
    jax.ShapeDtypeStruct((tokens, d), jnp.float32),
    jax.ShapeDtypeStruct((vocab, d), jnp.float32),
    jax.ShapeDtypeStruct((vocab,), jnp.float32),
    jax.ShapeDtypeStruct((tokens,), jnp.int32),
  )
  compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))).lower(*shapes).compile()
  too_big = [s for s in _buffer_shapes(compiled.as_text()) if np.prod(s) >= tokens * vocab]
  assert not too_big, f"buffers of tokens x vocab elements in the compiled program: {too_big}"
  assert compiled.memory_analysis().temp_size_in_bytes < logits_bytes / 8

  naive = lambda h, w, b, y: (
    -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h @ w.T + b[None, :]), y[:, None], axis=1))
  )
  naive_text = jax.jit(jax.value_and_grad(naive, argnums=(0, 1, 2))).lower(*shapes).compile().as_text()
  assert (tokens, vocab) in _buffer_shapes(naive_text), "the check must see the logits of the naive path"


FN = r"jaxloss\.linear_cross_entropy: "
ERRORS = [
  (
    dict(weight=jnp.ones((5, 3))),
    ValueError,
    FN + r"`weight` must have shape \[V, D\] with D = hidden\.shape\[-1\] = 4, got weight\.shape=\(5, 3\)",
  ),
  (dict(weight=jnp.ones((4,))), ValueError, r"`weight` must have shape \[V, D\]"),
  (
    dict(labels=jnp.zeros((3, 1), jnp.int32)),
    ValueError,
    FN + r"`labels` must have shape \(3,\) \(hidden\.shape\[:-1\]\), got labels\.shape=\(3, 1\)",
  ),
  (dict(labels=jnp.zeros(3)), TypeError, FN + r"`labels` must be an integer array, got dtype float32"),
  (dict(hidden=jnp.ones((3, 4), jnp.int32)), TypeError, FN + r"`hidden` must be a floating-point array"),
  (dict(hidden=jnp.ones(())), ValueError, FN + r"`hidden` must have a feature axis"),
  (dict(bias=jnp.ones(4)), ValueError, FN + r"`bias` must have shape \(5,\) \(weight\.shape\[0\]\), got bias\.shape"),
  (dict(chunk_size=0), ValueError, FN + r"`chunk_size` must be a positive int or None, got 0"),
  (dict(chunk_size=2.0), ValueError, r"`chunk_size` must be a positive int or None"),
  (dict(label_smoothing=1.5), ValueError, FN + r"`label_smoothing` must be in \[0, 1\], got 1\.5"),
  (dict(z_loss=-1.0), ValueError, FN + r"`z_loss` must be a non-negative number, got -1\.0"),
  (dict(ignore_index=1.0), ValueError, FN + r"`ignore_index` must be an int or None, got 1\.0"),
  (dict(weights=jnp.ones(4)), ValueError, r"`weights` must broadcast to the shape of the per-example loss \(3,\)"),
  (dict(reduction="avg"), ValueError, r"`reduction` must be one of 'mean', 'sum', 'none', got 'avg'"),
]


@pytest.mark.parametrize(
  "override, error, pattern", ERRORS, ids=[next(iter(e[0])) + str(i) for i, e in enumerate(ERRORS)]
)
def test_bad_input_fails_at_trace_time(override, error, pattern):
  args = {"hidden": jnp.ones((3, 4)), "weight": jnp.ones((5, 4)), "labels": jnp.zeros(3, jnp.int32), **override}
  positional = [args.pop(k) for k in ("hidden", "weight", "labels")]
  with pytest.raises(error, match=pattern):
    jl.linear_cross_entropy(*positional, **args)


def test_checked_reports_labels_out_of_range():
  hidden, weight = jnp.ones((3, 4)), jnp.ones((5, 4))
  with pytest.raises(
    checkify.JaxRuntimeError, match=r"jaxloss\.linear_cross_entropy: `labels` must be in \[0, 5\), found 5"
  ):
    jl.checked(jl.linear_cross_entropy)(hidden, weight, jnp.array([0, 5, 1]))
  # An ignored or masked label may be anything.
  jl.checked(jl.linear_cross_entropy)(hidden, weight, jnp.array([0, -100, 1]), ignore_index=-100)
  jl.checked(jl.linear_cross_entropy)(hidden, weight, jnp.array([0, 9, 1]), where=jnp.array([True, False, True]))


def _naive(hidden, weight, labels, *, bias, reduction, weights, where, z_loss=0.0, **options):
  """The naive path: the logits, then :func:`jaxloss.cross_entropy` (and the z-loss from the logits' lse)."""
  logits = jnp.matmul(hidden, weight.T)
  if bias is not None:
    logits = logits + jnp.broadcast_to(bias, logits.shape)
  if not z_loss:
    return jl.cross_entropy(logits, labels, reduction=reduction, weights=weights, where=where, **options)
  per_token = jl.cross_entropy(logits, labels, reduction="none", **options)
  per_token = per_token + z_loss * jnp.square(jax.nn.logsumexp(logits, axis=-1))
  kept = where & (labels != options.get("ignore_index", IGNORE))
  weighted = jnp.where(kept, weights * per_token, 0)
  count = jnp.sum(jnp.where(kept, weights, 0))
  mean = jnp.sum(weighted) / jnp.where(count > 0, count, 1)  # all ignored: 0, as jaxloss
  return {"none": weighted, "sum": jnp.sum(weighted), "mean": mean}[reduction]


@pytest.mark.parametrize("seed", range(4))
def test_matches_naive_path_over_random_shapes(seed):
  """Acceptance: value and gradients equal ``cross_entropy(hidden @ weight.T + bias, ...)``, 1e-5 f32, 1e-10 f64."""
  rng = np.random.default_rng(100 + seed)
  batch = tuple(rng.integers(1, 5, size=rng.integers(1, 4)))
  d, v = int(rng.integers(2, 10)), int(rng.integers(3, 40))
  chunk = [None, int(rng.integers(1, v + 4))][seed % 2]
  p = _problem(seed, batch, d, v, ignore=True)
  options = {"label_smoothing": float(rng.choice([0.0, 0.15])), "ignore_index": IGNORE}
  if seed >= 2:
    options["z_loss"] = 1e-2

  def all_reductions(fn, dtype):
    labels, where = jnp.asarray(p["labels"]), jnp.asarray(p["where"])
    weights = jnp.asarray(p["weights"], dtype)

    def each(hidden, weight, bias):
      return [
        fn(hidden, weight, labels, bias=bias, reduction=r, weights=weights, where=where, **options)
        for r in ("mean", "sum", "none")
      ]

    def total(args, r):
      out = each(*args)[r]
      return jnp.sum(out * jnp.arange(1, out.size + 1, dtype=dtype).reshape(out.shape))  # distinct per-token cotangents

    args = tuple(jnp.asarray(p[k], dtype) for k in ("hidden", "weight", "bias"))
    run = jax.jit(lambda a: (each(*a), [jax.grad(total)(a, r) for r in range(3)]))
    return run(args)

  fused = functools.partial(jl.linear_cross_entropy, chunk_size=chunk)
  for dtype, rtol, atol in ((jnp.float32, 1e-5, 1e-6), (jnp.float64, 1e-10, 1e-12)):
    with jax.enable_x64(dtype == jnp.float64):
      got, want = all_reductions(fused, dtype), all_reductions(_naive, dtype)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
