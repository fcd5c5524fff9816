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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

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


@pytest.mark.parametrize("layout", ["vd", "dv"])
def test_half_precision_vocabulary_path_holds_no_copy_of_the_weight(layout):
  # XLA:CPU slices half precision through float32: without care, a float32 (or bits) copy of the whole weight.
  tokens, d, vocab, chunk = 512, 256, 16000, 384  # a full and a shorter last block of tokens and of classes
  weight_shape = (vocab, d) if layout == "vd" else (d, vocab)
  shapes = (
    jax.ShapeDtypeStruct((tokens, d), jnp.bfloat16),
    jax.ShapeDtypeStruct(weight_shape, jnp.bfloat16),
    jax.ShapeDtypeStruct((tokens,), jnp.int32),
  )
  loss = lambda h, w, y: jl.linear_cross_entropy(h, w, y, chunk_size=chunk, weight_layout=layout, ordering="vocabulary")
  memory = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile().memory_analysis()
  assert memory.temp_size_in_bytes < vocab * d * 2  # the weight: 7.8 MiB; 4.5 MiB measured (its blocks)


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
  (
    dict(labels=jnp.zeros(3)),
    ValueError,
    FN + r"floating `labels` \(probabilities\) must have shape \(3, 5\) \(hidden\.shape\[:-1\] and the classes",
  ),
  (dict(labels=jnp.zeros((3, 5)), ignore_index=-100), ValueError, FN + r"`ignore_index` applies to integer labels"),
  (dict(hidden=jnp.ones((3, 4), jnp.int32)), TypeError, FN + r"`hidden` must be a floating-point array"),
  (dict(hidden=jnp.ones(())), ValueError, FN + r"`hidden` must have a feature axis"),
  (dict(bias=jnp.ones(4)), ValueError, FN + r"`bias` must have shape \(5,\) \(the classes of `weight`\), got bias"),
  (dict(weight=jnp.ones((5, 4)), weight_layout="dv"), ValueError, FN + r"`weight` must have shape \[D, V\] with D = "),
  (dict(weight_layout="kernel"), ValueError, FN + r"`weight_layout` must be 'vd' or 'dv', got 'kernel'"),
  (dict(ordering="auto"), ValueError, FN + r"`ordering` must be None, 'tokens' or 'vocabulary', got 'auto'"),
  (dict(ordering="tokens", reduction="none"), ValueError, FN + r"`ordering='tokens'` needs reduction 'mean' or"),
  (dict(softcap=0.0), ValueError, FN + r"`softcap` must be None or positive, got 0\.0"),
  (dict(label_smoothing=float("nan")), ValueError, FN + r"`label_smoothing` must be in \[0, 1\], got nan"),
  (dict(class_weights=jnp.ones(4)), ValueError, FN + r"`class_weights` must have shape \(5,\)"),
  (dict(chunk_size=0), ValueError, FN + r"`chunk_size` must be a positive int or None, got 0"),
  (dict(chunk_size=2.0), ValueError, r"`chunk_size` must be a positive int or None"),
  (dict(label_smoothing=1.5), ValueError, FN + r"`label_smoothing` must be in \[0, 1\], got 1\.5"),
  (dict(z_loss=-1.0), ValueError, FN + r"`z_loss` must be a non-negative number, got -1\.0"),
  (dict(ignore_index=1.0), TypeError, FN + r"`ignore_index` must be None or an int, got 1\.0"),
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


# Every option on every path against the naive path, cross_entropy(hidden @ weight.T + bias, ...) ----------------------

# (labels, weight layout, ordering of mean and sum): each path and layout with both kinds of labels.
PATHS = [("int", "vd", "tokens"), ("int", "dv", "vocabulary"), ("probs", "vd", "vocabulary"), ("probs", "dv", "tokens")]


def _every_option(seed):
  """A random problem with every option: class weights, smoothing, z-loss and soft-capping (traced), bias, masks."""
  kind, layout, ordering = PATHS[seed]
  rng = np.random.default_rng(100 + seed)
  batch = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 3)))
  d, v = int(rng.integers(2, 10)), int(rng.integers(3, 40))
  p = _problem(seed, batch, d, v, ignore=kind == "int")
  if kind == "probs":
    logits = rng.normal(size=(*batch, v))
    p["labels"] = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  p["class_weights"] = rng.uniform(0.5, 2.0, size=v)
  p["options"] = {"label_smoothing": 0.15, "z_loss": 1e-2, "softcap": 3.0}
  return p, layout, ordering, int(rng.integers(1, v + 4))


def _all_reductions(fn, p, dtype, diff_labels):
  """Values of the three reductions and the gradients of each with respect to every floating input and option."""
  static = {"ignore_index": IGNORE} if not diff_labels else {}
  where = jnp.asarray(p["where"])

  def each(args):
    hidden, weight, bias, class_weights, labels, options, _ = args
    kw = dict(bias=bias, class_weights=class_weights, weights=args[-1], where=where, **options, **static)
    return [fn(hidden, weight, labels, reduction=r, **kw) for r in ("mean", "sum", "none")]

  def total(args):
    # One gradient of a combination with distinct coefficients per reduction and per token (one backward pass).
    mean, sum_, none = each(args)
    return mean + 0.37 * sum_ + jnp.sum(none * jnp.linspace(0.1, 1.0, none.size, dtype=dtype).reshape(none.shape))

  floats = lambda x: jnp.asarray(x, dtype)
  labels = floats(p["labels"]) if diff_labels else jnp.asarray(p["labels"])
  args = tuple(floats(p[k]) for k in ("hidden", "weight", "bias", "class_weights"))
  args += (labels, jax.tree.map(floats, p["options"]), floats(p["weights"]))
  argnums = tuple(range(len(args))) if diff_labels else (0, 1, 2, 3, 5, 6)

  def run(args):
    return each(args), jax.grad(lambda *a: total(a), argnums=argnums)(*args)

  return jax.jit(lambda args: run(args))(args)


@pytest.mark.parametrize("seed", range(len(PATHS)), ids=["-".join(p) for p in PATHS])
def test_matches_naive_path_with_every_option_on_every_ordering(seed):
  """Acceptance: value and gradients (hidden, weight, bias, class weights, probability targets, the traced
  smoothing, z-loss and soft-cap, weights) equal ``cross_entropy(hidden @ weight.T + bias, ...)``, 1e-5 f32,
  1e-10 f64."""
  p, layout, ordering, chunk = _every_option(seed)
  diff_labels = p["labels"].dtype.kind == "f"

  def fused(hidden, weight, labels, reduction, **kw):
    chosen = ordering if reduction != "none" else None  # "none" always streams over the vocabulary
    w = weight.T if layout == "dv" else weight  # a [D, V] kernel, the layout a Flax Dense keeps
    return jl.linear_cross_entropy(
      hidden, w, labels, reduction=reduction, chunk_size=chunk, ordering=chosen, weight_layout=layout, **kw
    )

  def naive(hidden, weight, labels, *, bias, **kw):
    logits = jnp.matmul(hidden, weight.T)
    return jl.cross_entropy(logits + jnp.broadcast_to(bias, logits.shape), labels, **kw)

  for dtype, rtol, atol in ((jnp.float32, 1e-5, 1e-6), (jnp.float64, 1e-10, 1e-12)):
    with jax.enable_x64(dtype == jnp.float64):
      got, want = _all_reductions(fused, p, dtype, diff_labels), _all_reductions(naive, p, dtype, diff_labels)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_traced_option_gradients_match_finite_differences_on_both_orderings():
  p = _problem(12, (5,), 4, 9)
  names = ("label_smoothing", "z_loss", "softcap")
  with jax.enable_x64(True):
    hidden, weight, bias = (jnp.asarray(p[k]) for k in ("hidden", "weight", "bias"))
    labels = jnp.asarray(p["labels"])

    @jax.jit
    def both(values):
      options = dict(zip(names, values, strict=True))
      call = lambda o: jl.linear_cross_entropy(hidden, weight, labels, bias=bias, ordering=o, chunk_size=4, **options)
      return jnp.stack([call("tokens"), call("vocabulary")])

    at = jnp.array([0.2, 0.05, 2.5])
    jacobian = jax.jacrev(both)(at)
    step = 1e-6
    for k in range(3):
      e = jnp.zeros(3).at[k].set(step)
      np.testing.assert_allclose(jacobian[:, k], (both(at + e) - both(at - e)) / (2 * step), rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(np.asarray(jacobian)) > 1e-4)  # every option matters here


# torch's F.linear_cross_entropy: class weights (also with label smoothing) and probability targets ------------------


@pytest.mark.parametrize("kind", ["int", "probs"])
def test_class_weights_and_probability_targets_match_torch_linear_cross_entropy(kind):
  p = _problem(13, (7,), 4, 11, ignore=kind == "int")
  rng = np.random.default_rng(13)
  class_weights = rng.uniform(0.2, 3.0, size=11)
  if kind == "probs":
    logits = rng.normal(size=(7, 11))
    p["labels"] = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  t = {k: torch.tensor(p[k], requires_grad=True) for k in ("hidden", "weight", "bias")}
  labels = torch.tensor(p["labels"])
  static = {"ignore_index": IGNORE} if kind == "int" else {}
  combos = [("mean", None), ("mean", "vocabulary"), ("sum", None), ("sum", "vocabulary"), ("none", None)]
  scale = np.linspace(0.5, 1.5, 7)  # distinct per-token cotangents for reduction="none"

  def coefficient(k, out, as_array):
    return (k + 1) * (out if out.ndim == 0 else out * as_array(scale))

  wants = []
  for reduction, _ in combos:
    want = F.linear_cross_entropy(
      t["hidden"], t["weight"], labels, linear_bias=t["bias"], weight=torch.tensor(class_weights),
      reduction=reduction, label_smoothing=0.1, **static,
    )  # fmt: skip
    wants.append(want)
  total = sum(coefficient(k, w, torch.tensor).sum() for k, w in enumerate(wants))
  want_grads = torch.autograd.grad(total, list(t.values()))

  def ours(h, w, b):
    outs = [
      jl.linear_cross_entropy(
        h,
        w,
        jnp.asarray(p["labels"]),
        bias=b,
        class_weights=jnp.asarray(class_weights),
        reduction=reduction,
        label_smoothing=0.1,
        ordering=ordering,
        chunk_size=4,
        **static,
      )
      for reduction, ordering in combos
    ]
    return sum(jnp.sum(coefficient(k, out, jnp.asarray)) for k, out in enumerate(outs)), outs

  with jax.enable_x64(True):
    args = tuple(jnp.asarray(p[k]) for k in ("hidden", "weight", "bias"))
    grads, values = jax.jit(jax.grad(ours, argnums=(0, 1, 2), has_aux=True))(*args)
    for value, want in zip(values, wants, strict=True):
      np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, wg in zip(grads, want_grads, strict=True):
      np.testing.assert_allclose(g, wg.numpy(), rtol=1e-10, atol=1e-12)


# Reliability (issue 13) --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ordering", ["tokens", "vocabulary"])
def test_out_of_range_label_gives_nan_with_a_zero_gradient_as_cross_entropy(ordering):
  hidden, weight, labels = jnp.eye(3, 4), jnp.ones((3, 4)) + jnp.eye(3, 4), jnp.array([3, 0, 1])
  per_token = jl.linear_cross_entropy(hidden, weight, labels, reduction="none")
  assert np.isnan(per_token[0]) and np.all(np.isfinite(per_token[1:]))
  loss = lambda h, w: jl.linear_cross_entropy(h, w, labels, ordering=ordering, chunk_size=2)
  naive = lambda h, w: jl.cross_entropy(h @ w.T, labels)
  value, (d_hidden, d_weight) = jax.value_and_grad(loss, argnums=(0, 1))(hidden, weight)
  assert np.isnan(value)
  assert np.all(np.asarray(d_hidden[0]) == 0)
  want = jax.grad(naive, argnums=(0, 1))(hidden, weight)
  np.testing.assert_allclose(d_hidden, want[0], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(d_weight, want[1], rtol=1e-6, atol=1e-7)


def test_empty_batch_gives_zero_with_a_zero_gradient():
  hidden, weight, labels = jnp.zeros((0, 4)), jnp.ones((3, 4)), jnp.zeros(0, int)
  assert float(jl.linear_cross_entropy(hidden, weight, labels)) == 0.0
  assert float(jl.linear_cross_entropy(hidden, weight, labels, reduction="sum")) == 0.0
  assert jl.linear_cross_entropy(hidden, weight, labels, reduction="none").shape == (0,)
  d_weight = jax.grad(jl.linear_cross_entropy, argnums=1)(hidden, weight, labels)
  assert d_weight.shape == (3, 4) and np.all(np.asarray(d_weight) == 0)


# Sharded paths: shard_map over the vocabulary, tokens sharded in the types (1-device meshes here; the 8-device
# checks are tests/sharding_check.py) -------------------------------------------------------------------------------


def test_vocab_parallel_and_token_sharded_paths_take_every_option():
  p = _problem(14, (6,), 3, 8, ignore=True)
  rng = np.random.default_rng(14)
  class_weights = jnp.asarray(rng.uniform(0.5, 2.0, size=8), jnp.float32)
  options = {"label_smoothing": 0.1, "z_loss": 1e-2, "softcap": 2.0, "ignore_index": IGNORE}
  hidden, weight, bias, weights = (jnp.asarray(p[k], jnp.float32) for k in ("hidden", "weight", "bias", "weights"))
  labels, where = jnp.asarray(p["labels"]), jnp.asarray(p["where"])
  per_token = {"weights": weights, "where": where, "class_weights": class_weights}

  def naive(h, w, b):
    return jl.cross_entropy(h @ w.T + b[None, :], labels, reduction="sum", **per_token, **options)

  model = jax.make_mesh((1,), ("model",))

  @functools.partial(jax.shard_map, mesh=model, in_specs=(P(), P("model"), P("model")), out_specs=P())
  def vocab_parallel(h, w, b):
    kw = {**per_token, "class_weights": class_weights}
    return jl.linear_cross_entropy(h, w, labels, bias=b, axis_name="model", reduction="sum", **kw, **options)

  data = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  by_tokens = NamedSharding(data, P("data"))

  def token_sharded(h, w, b, ordering):
    kw = {k: jax.device_put(v, by_tokens) for k, v in per_token.items() if k != "class_weights"}
    y = jax.device_put(labels, by_tokens)
    kw |= {"class_weights": class_weights, "reduction": "sum", "ordering": ordering}
    return jl.linear_cross_entropy(h, w, y, bias=b, **kw, **options)

  want = jax.value_and_grad(naive, argnums=(0, 1, 2))(hidden, weight, bias)
  by_vocab = NamedSharding(model, P("model"))
  inputs = {vocab_parallel: (hidden, jax.device_put(weight, by_vocab), jax.device_put(bias, by_vocab))}
  replicated = NamedSharding(data, P())
  placed = (jax.device_put(hidden, by_tokens), *(jax.device_put(x, replicated) for x in (weight, bias)))
  for ordering in ("tokens", "vocabulary"):  # the token ordering is the default here
    inputs[functools.partial(token_sharded, ordering=ordering)] = placed
  for fn, args in inputs.items():
    got = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))(*args)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
