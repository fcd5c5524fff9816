"""Fused losses that never materialise their largest intermediate.

:func:`linear_cross_entropy` is the cross-entropy of a linear layer's logits,
``cross_entropy(hidden @ weight.T + bias, labels)``, computed without ever holding
the ``[tokens, vocab]`` logits (or their gradient) in memory. A mean or a sum
streams over blocks of tokens, each against the whole vocabulary, and forms the
gradients while a block's logits exist (as Liger Kernel's fused linear
cross-entropy and torch's chunked ``linear_cross_entropy`` do): three matrix
products, as many as the naive path. Per-token losses, a vocabulary sharded over
devices and tokens sharded in the types stream over vocabulary blocks with an
online log-sum-exp instead, keep three numbers per token and recompute each
logit block in the backward pass (Cut Cross-Entropy, Wijmans et al., 2024).
The feature axis is the last axis of ``hidden``; leading
dimensions are batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxloss import _checks, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss

# Vocabulary columns per streamed block. A [tokens, chunk] float32 block of
# 8192 tokens is 32 MiB at 1024; see linear_cross_entropy's docstring.
DEFAULT_CHUNK_SIZE = 1024


def _logits(hidden, weight, bias, start, size, dtype):
  """The logits of classes ``[start, start + size)``: ``[tokens, size]`` in ``dtype`` (weight rows are classes)."""
  w = lax.dynamic_slice_in_dim(weight, start, size, axis=0)
  z = jnp.matmul(hidden, w.T, preferred_element_type=dtype)
  if bias is not None:
    z = z + lax.dynamic_slice_in_dim(bias, start, size)[None, :].astype(dtype)
  return z


def _over_chunks(vocab: int, chunk: int, body, carry):
  """``carry = body(start, size, carry)`` over consecutive column blocks covering ``vocab``.

  Full blocks run in a loop (a static trip count, so it is reverse-differentiable);
  a shorter last block is traced once more with its own static size, so the
  weight is never padded (a pad would copy it).
  """
  full, rest = divmod(vocab, chunk)
  if full:
    carry = lax.fori_loop(0, full, lambda i, c: body(i * chunk, chunk, c), carry)
  if rest:
    carry = body(full * chunk, rest, carry)
  return carry


def _is_target(labels, start, size):
  return lax.broadcasted_iota(labels.dtype, (labels.shape[0], size), 1) == (labels - start)[:, None]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _logit_stats(hidden, weight, bias, labels, chunk):
  """Per-token ``(logsumexp_c z_c, z_y, sum_c z_c)`` of ``z = hidden @ weight.T + bias``.

  ``hidden`` is ``[N, D]``, ``weight`` ``[V, D]``, ``bias`` ``[V]`` or None,
  ``labels`` ``[N]``; a label outside ``[0, V)`` selects no column (its
  ``z_y`` is 0), which is how a vocabulary shard sees the labels of the others.
  The three statistics are all a cross-entropy needs (the negative
  log-likelihood, the label-smoothing term and the z-loss), and they combine
  across vocabulary shards by a log-sum-exp and two sums.
  """
  return _stats(hidden, weight, bias, labels, chunk)[0]


def _stats(hidden, weight, bias, labels, chunk):
  dtype = _checks.compute_dtype(hidden, weight, bias)
  vocab = weight.shape[0]

  def body(start, size, carry):
    top, scale, target, total = carry
    z = _logits(hidden, weight, bias, start, size, dtype)
    new_top = jnp.maximum(top, jnp.max(z, axis=1))
    # top starts at -inf: exp(-inf) = 0 rescales the empty sum.
    scale = scale * jnp.exp(top - new_top) + jnp.sum(jnp.exp(z - new_top[:, None]), axis=1)
    target = target + jnp.sum(jnp.where(_is_target(labels, start, size), z, 0), axis=1)
    return new_top, scale, target, total + jnp.sum(z, axis=1)

  # Per-token carries are shaped (and, under explicit sharding, sharded) like the labels.
  zeros = jnp.zeros_like(labels, dtype)
  top, scale, target, total = _over_chunks(vocab, chunk, body, (jnp.full_like(zeros, -jnp.inf), zeros, zeros, zeros))
  lse = top + jnp.log(scale)
  return (lse, target, total), (hidden, weight, bias, labels, lse)


def _stats_bwd(chunk, residuals, cotangents):
  hidden, weight, bias, labels, lse = residuals
  g_lse, g_target, g_total = (g[:, None] for g in cotangents)
  dtype = lse.dtype

  def body(start, size, carry):
    d_hidden, d_weight, d_bias = carry
    z = _logits(hidden, weight, bias, start, size, dtype)
    # d lse / d z = softmax(z), d z_y / d z = onehot(y), d sum(z) / d z = 1.
    dz = g_lse * jnp.exp(z - lse[:, None]) + g_total + jnp.where(_is_target(labels, start, size), g_target, 0)
    dz_in = dz.astype(hidden.dtype)
    w = lax.dynamic_slice_in_dim(weight, start, size, axis=0)
    d_hidden = d_hidden + jnp.matmul(dz_in, w, preferred_element_type=dtype)
    # Contracts the token axis: under explicit sharding, say the result is sharded as the weight.
    d_w = jnp.matmul(dz_in.T, hidden, preferred_element_type=dtype, out_sharding=jax.typeof(weight).sharding)
    d_weight = lax.dynamic_update_slice_in_dim(d_weight, d_w.astype(weight.dtype), start, axis=0)
    if bias is not None:
      d_bias = lax.dynamic_update_slice_in_dim(d_bias, jnp.sum(dz, axis=0).astype(bias.dtype), start, axis=0)
    return d_hidden, d_weight, d_bias

  init = (jnp.zeros_like(hidden, dtype), jnp.zeros_like(weight), None if bias is None else jnp.zeros_like(bias))
  d_hidden, d_weight, d_bias = _over_chunks(weight.shape[0], chunk, body, init)
  return d_hidden.astype(hidden.dtype), d_weight, d_bias, None


_logit_stats.defvjp(_stats, _stats_bwd)


def _token_pass(hidden, weight, bias, labels, coefficients, smoothing, z_loss, grads):
  """``sum_i c_i loss_i`` over token blocks ``hidden[:, k]`` (``[rows, blocks, D]``), each against the whole vocabulary.

  With ``grads``, also the gradients of that sum with respect to ``hidden``,
  ``weight``, ``bias`` and the coefficients (``loss_i``), formed from each
  block's logits while they exist: three matrix products in all, against four
  for a forward pass that keeps only per-token statistics and a backward pass
  that recomputes the logits.
  """
  dtype = _checks.compute_dtype(hidden, weight, bias)
  vocab = weight.shape[0]

  def body(k, carry):
    h = lax.dynamic_index_in_dim(hidden, k, axis=1, keepdims=False)
    y = lax.dynamic_index_in_dim(labels, k, axis=1, keepdims=False)
    c = lax.dynamic_index_in_dim(coefficients, k, axis=1, keepdims=False)
    z = _logits(h, weight, bias, 0, vocab, dtype)
    top = jnp.max(z, axis=1)
    exp = jnp.exp(z - top[:, None])
    normaliser = jnp.sum(exp, axis=1)
    lse = top + jnp.log(normaliser)
    is_target = _is_target(y, 0, vocab)
    per_token = lse - (1 - smoothing) * jnp.sum(jnp.where(is_target, z, 0), axis=1)
    if smoothing:
      per_token = per_token - (smoothing / vocab) * jnp.sum(z, axis=1)
    if z_loss:
      per_token = per_token + z_loss * jnp.square(lse)
    total = carry[0] + jnp.sum(c * per_token)
    if not grads:
      return (total,)
    _, d_hidden, d_weight, d_bias, d_coefficients = carry
    # d loss / d z = (1 + 2 z_loss lse) softmax(z) - (1 - eps) onehot(y) - eps / V.
    scale = c * (1 + 2 * z_loss * lse) if z_loss else c
    dz = (scale / normaliser)[:, None] * exp - jnp.where(is_target, ((1 - smoothing) * c)[:, None], 0)
    if smoothing:
      dz = dz - ((smoothing / vocab) * c)[:, None]
    dz_in = dz.astype(hidden.dtype)
    d_h = jnp.matmul(dz_in, weight, preferred_element_type=dtype)
    d_hidden = lax.dynamic_update_index_in_dim(d_hidden, d_h, k, axis=1)
    # Contracts the token axis: under explicit sharding, say the result is sharded as the weight.
    d_weight = d_weight + jnp.matmul(dz_in.T, h, preferred_element_type=dtype, out_sharding=jax.typeof(weight).sharding)
    if bias is not None:
      d_bias = d_bias + jnp.sum(dz, axis=0)
    d_coefficients = lax.dynamic_update_index_in_dim(d_coefficients, per_token, k, axis=1)
    return total, d_hidden, d_weight, d_bias, d_coefficients

  init = (jnp.zeros((), dtype),)
  if grads:
    zeros = lambda x: None if x is None else jnp.zeros(x.shape, dtype)
    init += (zeros(hidden), zeros(weight), zeros(bias), zeros(coefficients))
  return lax.fori_loop(0, hidden.shape[1], body, init)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _weighted_sum(hidden, weight, bias, labels, coefficients, smoothing, z_loss):
  """``sum_i coefficients_i * loss_i``, the gradients computed in the forward pass (see :func:`_token_pass`)."""
  return _token_pass(hidden, weight, bias, labels, coefficients, smoothing, z_loss, grads=False)[0]


def _weighted_sum_fwd(hidden, weight, bias, labels, coefficients, smoothing, z_loss):
  total, *gradients = _token_pass(hidden, weight, bias, labels, coefficients, smoothing, z_loss, grads=True)
  inputs = (hidden, weight, bias, coefficients)
  return total, tuple(None if d is None else d.astype(x.dtype) for d, x in zip(gradients, inputs, strict=True))


def _weighted_sum_bwd(smoothing, z_loss, gradients, g):
  d_hidden, d_weight, d_bias, d_coefficients = gradients
  scaled = lambda d: None if d is None else (g * d.astype(g.dtype)).astype(d.dtype)
  return scaled(d_hidden), scaled(d_weight), scaled(d_bias), None, scaled(d_coefficients)


_weighted_sum.defvjp(_weighted_sum_fwd, _weighted_sum_bwd)


def _token_blocks(x, blocks: int):
  """``x [N, ...]`` as ``[rows, blocks, ...]``: block ``k`` holds tokens ``k, k + blocks, ...`` (zero-padded).

  Strided, not contiguous: a batch sharded over devices stays sharded along
  ``rows``, so every block is spread over all the devices.
  """
  rows = -(-x.shape[0] // blocks)
  pad = rows * blocks - x.shape[0]
  if pad:
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
  return x.reshape(rows, blocks, *x.shape[1:])


def _batch_sharded(x) -> bool:
  spec = getattr(jax.typeof(x).sharding, "spec", ())
  return any(axis is not None for axis in spec)


def _varying(x) -> frozenset:
  """The ``shard_map`` mesh axes ``x`` varies over (empty outside ``shard_map``)."""
  return jax.typeof(x).mat.varying


def _same_varying_axes(*arrays, axis_name=None):
  """Inside ``shard_map``: the arrays typed as varying over the same mesh axes.

  The custom_vjp combines ``hidden``, ``weight`` and ``labels`` that may vary
  over different axes (tokens sharded over ``data``, the weight over the
  vocabulary axis ``axis_name``). Casting each to varying over the union makes
  autodiff sum the per-device partial gradients of an input that was
  replicated over an axis (the transpose of the cast is a ``psum``), so
  ``hidden`` gets its gradient summed over the vocabulary shards and ``weight``
  over the token shards. Outside ``shard_map`` nothing varies and nothing
  changes.
  """
  axes = set() if axis_name is None else {axis_name}
  axes = axes.union(*(_varying(a) for a in arrays if a is not None))
  out = []
  for a in arrays:
    missing = () if a is None else tuple(sorted(axes - _varying(a)))
    out.append(lax.pcast(a, missing, to="varying") if missing else a)
  return out


def _chunk(chunk_size, tokens: int, vocab: int, by_tokens: bool) -> int:
  """Tokens per block (``by_tokens``) or classes per block."""
  if chunk_size is None:
    # About 8M logits (32 MiB in float32) per block.
    if by_tokens:
      chunk_size = max(8, _BLOCK_ELEMENTS // max(vocab, 1))
    else:  # in multiples of 128 columns
      chunk_size = min(4096, max(128, (_BLOCK_ELEMENTS // max(tokens, 1)) // 128 * 128))
  ok = isinstance(chunk_size, (int, np.integer)) and not isinstance(chunk_size, bool) and chunk_size > 0
  _checks.option("chunk_size", chunk_size, ok, "a positive int or None")
  return int(min(chunk_size, max(tokens if by_tokens else vocab, 1)))


_BLOCK_ELEMENTS = 8 * 2**20


@loss
def linear_cross_entropy(
  hidden: ArrayLike,
  weight: ArrayLike,
  labels: ArrayLike,
  *,
  bias: ArrayLike | None = None,
  chunk_size: Static[int | None] = None,
  label_smoothing: Numeric = 0.0,
  ignore_index: Static[int | None] = None,
  z_loss: Numeric = 0.0,
  axis_name: Static[str | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Cross-entropy of a linear layer's logits, without materialising the logits.

  .. math::
    z_{ic} = h_i \cdot W_c + b_c, \qquad
    \ell_i = (1 - \epsilon)\,(\mathrm{lse}_i - z_{i y_i})
      + \frac{\epsilon}{V} \sum_c (\mathrm{lse}_i - z_{ic})
      + \lambda_z\, \mathrm{lse}_i^2, \qquad
    \mathrm{lse}_i = \log \sum_c e^{z_{ic}}

  Equal, in value and in gradients with respect to ``hidden``, ``weight`` and
  ``bias``, to a cross-entropy of the logits ``hidden @ weight.T + bias`` with
  the same options, but the ``[tokens, V]`` logits never exist. For
  ``reduction="mean"`` or ``"sum"`` it streams over blocks of ``chunk_size``
  tokens against the whole vocabulary and forms the gradients while each
  block's logits exist (under differentiation, the forward pass does the
  backward's work and the backward pass scales the result): three matrix
  products, as the naive path, and a few ``[chunk_size, V]`` blocks of memory.
  For ``reduction="none"`` (whose per-token cotangents arrive only in the
  backward pass), with ``axis_name``, or with tokens sharded in the types
  (explicit mesh axes), it streams over blocks of ``chunk_size`` classes with
  an online log-sum-exp, keeps three numbers per token and recomputes each
  logit block in the backward pass: a few ``[tokens, chunk_size]`` blocks, at
  the price of one more matrix product.

  Args:
    hidden: floating array ``[..., D]``: the features of each token (leading
      dimensions are batch).
    weight: floating array ``[V, D]``, one row per class: the layout of an
      embedding table (tied input embeddings pass it as is), of
      ``torch.nn.Linear.weight`` and of ``torch.nn.functional.linear_cross_entropy``.
      Vocabulary blocks are then contiguous rows. A ``[D, V]`` kernel (Flax
      ``Dense``) is passed as ``kernel.T``; under ``jit`` XLA copies it once
      into this layout (and the gradient back), so store a large head as
      ``[V, D]`` to avoid the copies.
    labels: integer class indices ``[...]`` in ``[0, V)`` (the shape of
      ``hidden`` without its last axis).
    bias: optional floating array ``[V]`` added to the logits.
    chunk_size: tokens per block (mean and sum) or classes per block (see
      above); ``None`` (default) picks about 8M logits per block, 32 MiB in
      float32: ``8M / V`` tokens (256 for ``V = 32768``), or ``8M / tokens``
      classes (1024 for 8192 tokens), a multiple of 128 between 128 and 4096.
      Larger blocks use more memory and are not faster on CPU.
    label_smoothing: ``epsilon`` in ``[0, 1]``: the target mixes the one-hot
      label with the uniform distribution over the ``V`` classes (as
      ``torch.nn.functional.cross_entropy``).
    ignore_index: tokens with this label have loss 0, a zero gradient and do
      not count in the mean (``None``, the default, ignores nothing).
    z_loss: ``lambda_z >= 0``: weight of the auxiliary ``lse**2`` term (PaLM),
      which keeps the softmax normaliser near 1; added to every token's loss.
    axis_name: ``None``, or the name of a ``shard_map`` mesh axis over which
      ``weight`` (and ``bias``) are sharded along the vocabulary: each device
      holds ``V / n`` consecutive rows (device ``k`` the ``k``-th block), the
      full ``hidden`` and the (global) ``labels``. The log-sum-exp, target
      logit and logit sum are combined with ``pmax`` / ``psum`` over the
      axis, so the loss equals the unsharded one, gradients flow to each
      shard, and no device computes more than its ``[tokens, V / n]`` share.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``, over the tokens
      this call sees (inside ``shard_map``, the local ones).
    weights: optional per-token weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``; False tokens count
      as ignored (their ``hidden`` may hold inf or NaN).

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``. Half-precision inputs give
    float32 (the matrix products take the inputs' dtype and accumulate in
    float32), float64 inputs give float64.

  Smooth in every input. It is a ``jax.custom_vjp``: reverse mode (``grad``,
  ``vjp``, ``jacrev``, also nested) works, forward mode (``jvp``, ``jacfwd``,
  ``hessian``) raises; use explicit logits and a cross-entropy for those. An
  all-ignored mean is 0 with a zero gradient (torch gives NaN).

  References:
    Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models"
    (Cut Cross-Entropy), ICLR 2025; Hsu et al., "Liger Kernel", 2024; the
    z-loss: Chowdhery et al., "PaLM", 2022. Matches
    ``torch.nn.functional.linear_cross_entropy`` (same weight layout; its
    ``ignore_index`` defaults to -100, this one to None).

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> hidden = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> labels = jnp.array([0, 1])
    >>> print(jl.linear_cross_entropy(hidden, weight, labels, chunk_size=2))
    0.32357...
    >>> d_hidden, d_weight = jax.grad(jl.linear_cross_entropy, argnums=(0, 1))(hidden, weight, labels)
    >>> print(d_weight.shape)
    (3, 2)
  """
  _reduce.check_reduction(reduction)
  h = _checks.floating("hidden", hidden)
  w = _checks.floating("weight", weight)
  y = _checks.integer("labels", labels)
  b = None if bias is None else _checks.floating("bias", bias)
  if h.ndim < 1:
    raise ValueError(f"{_checks.name()}: `hidden` must have a feature axis, shape [..., D]; got a scalar.")
  if w.ndim != 2 or w.shape[1] != h.shape[-1]:
    raise ValueError(
      f"{_checks.name()}: `weight` must have shape [V, D] with D = hidden.shape[-1] = {h.shape[-1]},"
      f" got weight.shape={w.shape}."
      " For a [D, V] kernel pass its transpose."
    )
  if y.shape != h.shape[:-1]:
    raise ValueError(
      f"{_checks.name()}: `labels` must have shape {h.shape[:-1]} (hidden.shape[:-1]), got labels.shape={y.shape}."
    )
  local_vocab = w.shape[0]
  if b is not None and b.shape != (local_vocab,):
    raise ValueError(
      f"{_checks.name()}: `bias` must have shape ({local_vocab},) (weight.shape[0]), got bias.shape={b.shape}."
    )
  smoothing = _checks.static_number("label_smoothing", label_smoothing)
  _checks.option("label_smoothing", label_smoothing, 0 <= smoothing <= 1, "in [0, 1]")
  z_weight = _checks.static_number("z_loss", z_loss)
  _checks.option("z_loss", z_loss, z_weight >= 0, "a non-negative number")
  ok = ignore_index is None or (isinstance(ignore_index, (int, np.integer)) and not isinstance(ignore_index, bool))
  _checks.option("ignore_index", ignore_index, ok, "an int or None")
  tokens = int(np.prod(y.shape))
  # Mean and sum: blocks of tokens against the whole vocabulary, gradients formed in the forward pass.
  # reduction="none" (whose cotangents are only known in the backward pass), a vocabulary sharded over
  # axis_name, and tokens sharded in the types: blocks of classes, logits recomputed in the backward pass.
  by_tokens = reduction != "none" and axis_name is None and not _batch_sharded(h)
  chunk = _chunk(chunk_size, tokens, local_vocab, by_tokens)

  dtype = _checks.compute_dtype(h, w, b)
  if h.dtype != w.dtype:
    h, w = h.astype(dtype), w.astype(dtype)
  b = None if b is None else b.astype(dtype)
  mask = _inputs.mask(where, y.shape, of="`labels`")
  if ignore_index is not None:
    kept = y != ignore_index
    mask = kept if mask is None else mask & kept
  h = _inputs.zero_masked(mask, h, axis=-1)
  if mask is not None:
    y = jnp.where(mask, y, jnp.zeros((), y.dtype))

  vocab = local_vocab if axis_name is None else local_vocab * lax.axis_size(axis_name)
  outside = (y < 0) | (y >= vocab)
  # A reduction, not an index: indexing a token-sharded array by a traced position fails under explicit sharding.
  offender = jnp.max(jnp.where(outside, y, jnp.iinfo(y.dtype).min))
  _checks.debug_check(~jnp.any(outside), f"{_checks.name()}: `labels` must be in [0, {vocab}), found {{}}.", offender)
  _checks.debug_no_nan(hidden=h)
  flat_h, flat_y = h.reshape(tokens, h.shape[-1]), y.reshape(tokens)
  if by_tokens:
    # The reduction is linear in the per-token losses: its gradient is their coefficients.
    reduced = lambda per_token: _reduce.reduce(per_token, reduction=reduction, weights=weights, where=mask)
    coefficients = jax.grad(reduced)(jnp.zeros(y.shape, dtype)).reshape(tokens)
    blocks = -(-tokens // chunk)
    flat_h, w, b, flat_y, coefficients = _same_varying_axes(flat_h, w, b, flat_y, coefficients)
    laid_out = [_token_blocks(x, blocks) for x in (flat_h, flat_y, coefficients)]
    return _weighted_sum(laid_out[0], w, b, laid_out[1], laid_out[2], smoothing, z_weight)
  if axis_name is not None:
    # This device's classes are [offset, offset + local_vocab): other labels select no column.
    flat_y = flat_y - (lax.axis_index(axis_name) * local_vocab).astype(flat_y.dtype)
  flat_h, w, b, flat_y = _same_varying_axes(flat_h, w, b, flat_y, axis_name=axis_name)
  lse, target, total = _logit_stats(flat_h, w, b, flat_y, chunk)
  if axis_name is not None:
    top = lax.pmax(lax.stop_gradient(lse), axis_name)
    lse = top + jnp.log(lax.psum(jnp.exp(lse - top), axis_name))
    target, total = lax.psum((target, total), axis_name)

  per_token = lse - target
  if smoothing:
    per_token = (1 - smoothing) * per_token + smoothing * (lse - total / vocab)
  if z_weight:
    per_token = per_token + z_weight * jnp.square(lse)
  return _reduce.reduce(per_token.reshape(y.shape), reduction=reduction, weights=weights, where=mask)
