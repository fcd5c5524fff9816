"""Fused losses that never materialise their largest intermediate.

:func:`linear_cross_entropy` is the cross-entropy of a linear layer's logits,
``cross_entropy(hidden @ weight.T + bias, labels, ...)``, computed without ever
holding the ``[tokens, vocab]`` logits (or their gradient) in memory. Two
orderings compute it:

* token blocks: each block of tokens against the whole vocabulary, the
  gradients formed while a block's logits exist (as Liger Kernel's fused linear
  cross-entropy and torch's chunked ``linear_cross_entropy`` do): three matrix
  products, as many as the naive path, but a ``[V, D]`` float32 accumulator of
  the weight gradient (with tokens sharded, one per device, reduced once);
* vocabulary blocks: a first pass keeps three numbers per token (an online
  log-sum-exp, the target term and the smoothing term), the backward pass
  recomputes each block of logits and completes that block of the weight
  gradient once (Cut Cross-Entropy, Wijmans et al., 2024): four matrix
  products, and only per-block and per-token state.

Both differentiate one block function (soft-capping, targets, class weights,
options) with ``jax.vjp``, so every option is on both paths with the same
formula. The feature axis is the last axis of ``hidden``; leading dimensions are
batch.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss

# About this many logits per streamed block (32 MiB in float32); see linear_cross_entropy's docstring.
_BLOCK_ELEMENTS = 8 * 2**20
# Vocabulary blocks are [_VOCAB_ROWS tokens, chunk classes], 2M logits (8 MiB in float32) by default: next to
# the float32 [tokens, D] accumulator of the hidden gradient they keep the 256 MiB floor at Llama-3-8B's head.
_VOCAB_ROWS = 2048
_VOCAB_BLOCK_ELEMENTS = 2 * 2**20
# The token path keeps a float32 [V, D] accumulator of the weight gradient (and the gradients as
# residuals); above this many bytes of it, the vocabulary path is chosen (see linear_cross_entropy).
_TOKEN_PATH_MAX_BYTES = 256 * 2**20


class _Config(NamedTuple):
  """The static part of a call: block size, weight layout, the constant options and the vocabulary size."""

  chunk: int  # tokens per block (token path) or classes per block (vocabulary path)
  rows: int  # tokens per block of the vocabulary path
  layout: str  # "vd": weight [V, D]; "dv": [D, V]
  constants: tuple[tuple[str, float | None], ...]  # options given as Python numbers
  vocab: int  # the whole vocabulary (all shards)


def _options(config: _Config, traced: dict) -> dict:
  return {**dict(config.constants), **traced}


# Logit blocks ------------------------------------------------------------------------------------


def _weight_block(weight, start, size, layout):
  axis = 0 if layout == "vd" else 1
  return lax.dynamic_slice_in_dim(weight, start, size, axis=axis)


def _raw_logits(hidden, w, bias, start, size, layout, dtype):
  """``hidden @ w.T + bias[start:start + size]`` for a weight block ``w`` (``[size, D]``, or ``[D, size]``)."""
  if layout == "vd":
    x = jnp.matmul(hidden, w.T, preferred_element_type=dtype)
  else:
    x = jnp.matmul(hidden, w, preferred_element_type=dtype)
  if bias is not None:
    x = x + lax.dynamic_slice_in_dim(bias, start, size)[None, :].astype(dtype)
  return x


def _weight_grad(dx, hidden, layout, weight, dtype):
  """The gradient of a weight block from the logits' gradient ``dx``, in the weight's layout."""
  # Contracts the token axis: under explicit sharding, say the result is sharded as the weight.
  sharding = jax.typeof(weight).sharding
  if layout == "vd":
    return jnp.matmul(dx.T, hidden, preferred_element_type=dtype, out_sharding=sharding)
  return jnp.matmul(hidden.T, dx, preferred_element_type=dtype, out_sharding=sharding)


def _hidden_grad(dx, w, layout, dtype):
  return jnp.matmul(dx, w if layout == "vd" else w.T, preferred_element_type=dtype)


def _target_terms(z, labels, start, probs, class_w):
  """Per token, over the block's classes: ``a = sum_c w_c q_c z_c`` and ``s = sum_c w_c z_c``.

  ``q`` is the one-hot of ``labels - start`` (a label outside the block selects
  nothing) or the block's probability targets ``probs``; ``w`` the block's class
  weights (1 without).
  """
  wz = z if class_w is None else z * class_w[None, :]
  if probs is None:
    hit = lax.broadcasted_iota(labels.dtype, z.shape, 1) == (labels - start)[:, None]
    a = jnp.sum(jnp.where(hit, wz, 0), axis=1)
  else:
    a = jnp.sum(probs * wz, axis=1)
  return a, jnp.sum(wz, axis=1)


def _per_token(lse, a, s, mass, total_w, vocab, options):
  """The per-token loss from the statistics: ``(1 - eps)(T lse - a) + eps / V (W lse - s) + lambda_z lse**2``.

  ``T = sum_c w_c q_c`` is the token's target mass (its class weight for an
  integer label), ``W = sum_c w_c``; the formula of
  :func:`jaxloss.cross_entropy` with class weights and label smoothing.
  """
  eps, z_loss = options["label_smoothing"], options["z_loss"]
  loss = mass * lse - a
  if not _inputs.is_constant(eps, 0):
    loss = (1 - eps) * loss + (eps / vocab) * (total_w * lse - s)
  if not _inputs.is_constant(z_loss, 0):
    loss = loss + z_loss * jnp.square(lse)
  return loss


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


def _slice(x, start, size, axis):
  return None if x is None else lax.dynamic_slice_in_dim(x, start, size, axis=axis)


def _update(x, block, start, axis):
  if x is None:
    return None
  return lax.dynamic_update_slice_in_dim(x, block.astype(x.dtype), start, axis=axis)


def _add(x, y):
  return None if x is None else x + y


# Vocabulary blocks: per-token statistics, logits recomputed in the backward pass -------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _logit_stats(config, hidden, weight, bias, labels, probs, class_w, traced):
  """Per-token ``(lse, a, s)`` of the soft-capped ``z`` of ``hidden @ weight.T + bias`` (see :func:`_target_terms`).

  ``hidden`` is ``[N, D]``, ``weight`` ``[V, D]`` (or ``[D, V]``), ``bias``
  ``[V]`` or None, ``labels`` ``[N]`` (a label outside ``[0, V)`` selects no
  column, which is how a vocabulary shard sees the labels of the others) or
  ``probs`` ``[N, V]``, ``class_w`` ``[V]`` or None, ``traced`` the traced
  options (only ``softcap`` enters here). The statistics combine across
  vocabulary shards by a log-sum-exp and two sums.
  """
  return _stats(config, hidden, weight, bias, labels, probs, class_w, traced)[0]


def _bits(x):
  """A half-precision array as its bits (uint16), other arrays as they are.

  For the weight gradient's ``[V, D]`` buffer, written one block at a time:
  XLA:CPU has no half-precision dynamic-update-slice, and its float
  normalisation would rewrite the whole buffer through float32 at every block
  (measured: 4x slower). Bitcast to bits, updated and bitcast back (:func:`_unbits`)
  inside the loop body, the update is in place; a buffer carried as bits and
  bitcast once after the loop would be copied (a [V, D] temporary).
  """
  return lax.bitcast_convert_type(x, jnp.uint16) if x.dtype.itemsize == 2 else x


def _unbits(x, dtype):
  return x if x.dtype == dtype else lax.bitcast_convert_type(x, dtype)


def _pinned(start, *arrays):
  """``arrays`` behind an optimisation barrier with the block index ``start``, to be sliced at ``start``.

  XLA:CPU has no half-precision (dynamic) slice: float normalisation converts
  the sliced array to float32, and a loop-invariant convert of the whole
  ``[V, D]`` weight would be hoisted out of the loop (measured: a float32 copy
  of the weight, 2.25 GiB at Gemma-2-2B's head; a uint16 bitcast of it is a
  copy too). Behind a barrier that also holds the loop index, the array is not
  loop-invariant for XLA, so the convert stays in the loop, fused into the
  slice: only the block is converted. The barrier costs nothing (it forwards
  its operands' buffers).
  """
  if all(a is None or a.dtype.itemsize != 2 for a in arrays):
    return arrays
  return lax.optimization_barrier((jnp.asarray(start), arrays))[1]


def _stats(config, hidden, weight, bias, labels, probs, class_w, traced):
  dtype = _checks.compute_dtype(hidden, weight, bias)
  cap = _options(config, traced)["softcap"]
  vocab = weight.shape[0 if config.layout == "vd" else 1]

  def rows(first, count, carry):
    h = _slice(_pinned(first, hidden)[0], first, count, 0)
    y, p = _slice(labels, first, count, 0), _slice(probs, first, count, 0)

    def body(start, size, carry):
      top, scale, a, s = carry
      w = _weight_block(_pinned(start, weight)[0], start, size, config.layout)
      z = _custom.softcapped(_raw_logits(h, w, bias, start, size, config.layout, dtype), cap)
      new_top = jnp.maximum(top, jnp.max(z, axis=1))
      # top starts at -inf: exp(-inf) = 0 rescales the empty sum.
      scale = scale * jnp.exp(top - new_top) + jnp.sum(jnp.exp(z - new_top[:, None]), axis=1)
      block_a, block_s = _target_terms(z, y, start, _slice(p, start, size, 1), _slice(class_w, start, size, 0))
      return new_top, scale, a + block_a, s + block_s

    zeros = jnp.zeros_like(h[:, 0], dtype)
    top, scale, a, s = _over_chunks(vocab, config.chunk, body, (jnp.full_like(zeros, -jnp.inf), zeros, zeros, zeros))
    return tuple(_update(x, block, first, 0) for x, block in zip(carry, (top + jnp.log(scale), a, s), strict=True))

  # Per-token results are shaped (and, under explicit sharding, sharded) like the tokens.
  zeros = jnp.zeros_like(hidden[:, 0], dtype)
  lse, a, s = _over_chunks(hidden.shape[0], config.rows, rows, (zeros, zeros, zeros))
  return (lse, a, s), (hidden, weight, bias, labels, probs, class_w, traced, lse)


def _stats_bwd(config, residuals, cotangents):
  """Vocabulary blocks outside, token blocks inside: each block of the weight gradient is completed once."""
  hidden, weight, bias, labels, probs, class_w, traced, lse = residuals
  dtype = lse.dtype
  layout = config.layout
  vocab = weight.shape[0 if layout == "vd" else 1]
  axis = 0 if layout == "vd" else 1

  def classes(start, size, carry):
    d_hidden, d_weight, d_bias, d_probs, d_class_w, d_traced = carry
    w = _weight_block(_pinned(start, weight)[0], start, size, layout)
    cw = _slice(class_w, start, size, 0)

    def rows(first, count, carry):
      d_hidden, d_w, d_b, d_probs, d_c, d_traced = carry
      h = _slice(_pinned(first, hidden)[0], first, count, 0)
      y, m, g_lse, g_a, g_s = (_slice(x, first, count, 0) for x in (labels, lse, *cotangents))
      x = _raw_logits(h, w, bias, start, size, layout, dtype)

      def block(x, traced, p, cw):
        z = _custom.softcapped(x, _options(config, traced)["softcap"])
        a, s = _target_terms(z, y, start, p, cw)
        # d lse / d z = exp(z - lse): the gradient of this sum with lse held fixed.
        return jnp.sum(g_lse[:, None] * jnp.exp(z - m[:, None])) + jnp.sum(g_a * a) + jnp.sum(g_s * s)

      p = None if probs is None else lax.dynamic_slice(probs, (first, start), (count, size))
      dx, dt, dp, dc = jax.grad(block, argnums=(0, 1, 2, 3))(x, traced, p, cw)
      dx_in = dx.astype(hidden.dtype)
      d_h = _slice(d_hidden, first, count, 0) + _hidden_grad(dx_in, w, layout, dtype)
      d_hidden = _update(d_hidden, d_h, first, 0)
      d_w = d_w + _weight_grad(dx_in, h, layout, weight, dtype)
      d_b = _add(d_b, jnp.sum(dx, axis=0))
      if probs is not None:
        d_probs = lax.dynamic_update_slice(d_probs, dp.astype(d_probs.dtype), (first, start))
      d_c = _add(d_c, dc)
      return d_hidden, d_w, d_b, d_probs, d_c, jax.tree.map(jnp.add, d_traced, dt)

    zeros = lambda x: None if x is None else jnp.zeros_like(x, dtype)
    init = (d_hidden, zeros(w), zeros(_slice(bias, start, size, 0)), d_probs, zeros(cw), d_traced)
    d_hidden, d_w, d_b, d_probs, d_c, d_traced = _over_chunks(hidden.shape[0], config.rows, rows, init)
    d_weight = _unbits(_update(_bits(d_weight), _bits(d_w.astype(weight.dtype)), start, axis), weight.dtype)
    return d_hidden, d_weight, _update(d_bias, d_b, start, 0), d_probs, _update(d_class_w, d_c, start, 0), d_traced

  like = lambda x: None if x is None else jnp.zeros_like(x)
  init: tuple[Any, ...] = (
    jnp.zeros_like(hidden, dtype),
    jnp.zeros_like(weight),
    like(bias),
    like(probs),
    like(class_w),
  )
  init += (jax.tree.map(jnp.zeros_like, traced),)
  d_hidden, d_weight, d_bias, d_probs, d_class_w, d_traced = _over_chunks(vocab, config.chunk, classes, init)
  return d_hidden.astype(hidden.dtype), d_weight, d_bias, None, d_probs, d_class_w, d_traced


_logit_stats.defvjp(_stats, _stats_bwd)


# Token blocks: gradients formed in the forward pass ------------------------------------------------


class _PerToken(NamedTuple):
  """Per-token inputs of the token path, laid out ``[rows, blocks, ...]`` (see :func:`_token_blocks`)."""

  hidden: jax.Array
  labels: jax.Array | None
  probs: jax.Array | None
  mass: jax.Array  # the target mass T (differentiable)
  coefficients: jax.Array  # d reduction / d loss_i (differentiable)
  out_of_range: jax.Array | None  # bool (False in the padding); None in the cotangent


def _token_pass(config, tokens: _PerToken, weight, bias, class_w, traced, grads):
  """``sum_i c_i loss_i`` over token blocks ``k`` (``tokens.hidden[:, k]``), each against the whole vocabulary.

  With ``grads``, also the gradients of that sum with respect to the hidden
  states, ``weight``, ``bias``, the probability targets, the target masses,
  the coefficients (``loss_i``), ``class_w`` and the traced options, formed
  from each block's logits while they exist: three matrix products in all.
  """
  dtype = _checks.compute_dtype(tokens.hidden, weight, bias)
  layout = config.layout
  vocab = weight.shape[0 if layout == "vd" else 1]

  def pick(x, k) -> Any:
    return None if x is None else lax.dynamic_index_in_dim(x, k, axis=1, keepdims=False)

  def block_loss(x, traced, probs, mass, coefficients, class_w, labels, in_range):
    options = _options(config, traced)
    z = _custom.softcapped(x, options["softcap"])
    lse = jax.nn.logsumexp(z, axis=1)
    a, s = _target_terms(z, labels, 0, probs, class_w)
    total_w = vocab if class_w is None else jnp.sum(class_w)
    per_token = _per_token(lse, a, s, mass, total_w, config.vocab, options)
    return jnp.sum(coefficients * jnp.where(in_range, per_token, jnp.nan)), per_token

  def body(k, carry):
    h, labels, probs, mass, c, out_of_range = (pick(x, k) for x in tokens)
    in_range = ~out_of_range
    x = _raw_logits(h, weight, bias, 0, vocab, layout, dtype)
    diff = (x, traced, probs, mass, c, class_w)
    if not grads:
      return (carry[0] + block_loss(*diff, labels, in_range)[0],)
    total, d_hidden, d_weight, d_bias, d_probs, d_mass, d_c, d_class_w, d_traced = carry
    of_block = lambda x, t, p, m, c, cw: block_loss(x, t, p, m, c, cw, labels, in_range)
    value, vjp, per_token = jax.vjp(of_block, *diff, has_aux=True)
    dx, dt, dp, dm, _, dc = vjp(jnp.ones_like(value))
    # An out-of-range label's loss is NaN with a zero gradient; d total / d c_i is that loss.
    dx = jnp.where(in_range[:, None], dx, 0)
    dx_in = dx.astype(tokens.hidden.dtype)
    d_hidden = lax.dynamic_update_index_in_dim(d_hidden, _hidden_grad(dx_in, weight, layout, dtype), k, axis=1)
    d_weight = d_weight + _weight_grad(dx_in, h, layout, weight, dtype)
    d_bias = _add(d_bias, jnp.sum(dx, axis=0))
    put = lambda buffer, block: None if buffer is None else lax.dynamic_update_index_in_dim(buffer, block, k, axis=1)
    d_probs, d_mass = put(d_probs, dp), put(d_mass, dm)
    d_c = put(d_c, jnp.where(in_range, per_token, jnp.nan))
    d_class_w = _add(d_class_w, dc)
    d_traced = jax.tree.map(jnp.add, d_traced, dt)
    return total + value, d_hidden, d_weight, d_bias, d_probs, d_mass, d_c, d_class_w, d_traced

  init: tuple[Any, ...] = (jnp.zeros((), dtype),)
  if grads:
    zeros = lambda x: None if x is None else jnp.zeros(x.shape, dtype)
    init += tuple(zeros(x) for x in (tokens.hidden, weight, bias, tokens.probs, tokens.mass, tokens.coefficients))
    init += (zeros(class_w), jax.tree.map(zeros, traced))
  # Inside shard_map (tokens sharded), every sum over the tokens varies over the token axes, as they do.
  varying = tuple(sorted(_varying(tokens.hidden)))
  if varying:
    init = jax.tree.map(lambda x: lax.pcast(x, varying, to="varying"), init)
  return lax.fori_loop(0, tokens.hidden.shape[1], body, init)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _weighted_sum(config, tokens, weight, bias, class_w, traced):
  """``sum_i c_i loss_i``, the gradients computed in the forward pass (see :func:`_token_pass`)."""
  return _token_pass(config, tokens, weight, bias, class_w, traced, grads=False)[0]


def _weighted_sum_fwd(config, tokens, weight, bias, class_w, traced):
  total, d_hidden, d_weight, d_bias, d_probs, d_mass, d_c, d_class_w, d_traced = _token_pass(
    config, tokens, weight, bias, class_w, traced, grads=True
  )

  def cast(d, x) -> Any:
    return None if d is None else d.astype(x.dtype)

  d_c = d_c.astype(tokens.coefficients.dtype)
  d_tokens = _PerToken(cast(d_hidden, tokens.hidden), None, cast(d_probs, tokens.probs), d_mass, d_c, None)
  gradients = (d_tokens, cast(d_weight, weight), cast(d_bias, bias), cast(d_class_w, class_w), d_traced)
  return total, gradients


def _weighted_sum_bwd(config, gradients, g):
  scaled = lambda d: (g * d.astype(g.dtype)).astype(d.dtype)
  return jax.tree.map(scaled, gradients)


_weighted_sum.defvjp(_weighted_sum_fwd, _weighted_sum_bwd)


def _token_blocks(x, blocks: int):
  """``x [N, ...]`` as ``[rows, blocks, ...]``: block ``k`` holds tokens ``k, k + blocks, ...`` (zero-padded).

  Strided, not contiguous: a batch sharded over devices stays sharded along
  ``rows``, so every block is spread over all the devices.
  """
  if x is None:
    return None
  rows = -(-x.shape[0] // blocks)
  pad = rows * blocks - x.shape[0]
  if pad:
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
  return x.reshape(rows, blocks, *x.shape[1:])


# Sharding ----------------------------------------------------------------------------------------


def _batch_sharded(x) -> bool:
  spec = getattr(jax.typeof(x).sharding, "spec", ())
  return any(axis is not None for axis in spec)


def _token_stream(config, tokens: _PerToken, weight, bias, class_w, traced):
  """:func:`_weighted_sum` over ``tokens`` (``[N, ...]``, laid out here in blocks of at most ``config.chunk``)."""
  tokens, weight, bias, class_w, traced = _same_varying_axes(tokens, weight, bias, class_w, traced)
  blocks = -(-tokens.hidden.shape[0] // config.chunk)
  laid_out = _PerToken(*(_token_blocks(x, blocks) for x in tokens))
  return _weighted_sum(config, laid_out, weight, bias, class_w, traced)


def _token_axes(hidden, replicated) -> tuple[str, ...] | None:
  """The mesh axes sharding the tokens of ``hidden [tokens, D]`` in its type, where the token path can run
  on each device's tokens (:func:`_token_sharded_sum`): the features unsharded, the tokens evenly divided
  and the ``replicated`` arrays (weight, bias, class weights; None or meshless allowed) replicated. Else None."""
  spec = (*jax.typeof(hidden).sharding.spec, None, None)
  first, features = spec[0], spec[1]
  if first is None or features is not None:
    return None
  axes = (first,) if isinstance(first, str) else tuple(first)
  mesh = jax.typeof(hidden).sharding.mesh
  if hidden.shape[0] % int(np.prod([mesh.shape[a] for a in axes])):
    return None
  for a in replicated:
    if a is not None and _batch_sharded(a):
      return None
  return axes


def _token_sharded_sum(config, tokens: _PerToken, weight, bias, class_w, traced):
  """:func:`_weighted_sum` on each device's tokens (``jax.shard_map`` over the token axes), summed.

  Each device streams its own tokens against the whole (replicated) vocabulary
  and accumulates its share of the weight gradient locally; autodiff's
  transpose of the replicated inputs' cast to varying (:func:`_same_varying_axes`)
  sums the shares once, one all-reduce of ``[V, D]`` per call, instead of one
  per block (the product of a block sharded over the tokens, typed replicated).
  """
  axes = _token_axes(tokens.hidden, (weight, bias, class_w))
  assert axes is not None
  mesh = jax.typeof(tokens.hidden).sharding.mesh
  by_tokens = P(axes)
  tokens = jax.tree.map(lambda x: jax.sharding.reshard(x, jax.sharding.NamedSharding(mesh, by_tokens)), tokens)
  weight, bias, class_w, traced = _on_mesh_of(tokens.hidden, (weight, bias, class_w, traced))

  def local(tokens, weight, bias, class_w, traced):  # this device's tokens
    return lax.psum(_token_stream(config, tokens, weight, bias, class_w, traced), axes)

  specs = (by_tokens, P(), P(), P(), P())
  return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(), axis_names=set(axes))(
    tokens, weight, bias, class_w, traced
  )


def _on_mesh_of(x, arrays):
  """``arrays`` replicated on the mesh of the token-sharded ``x`` where they have no mesh (a concrete class
  weights array next to sharded tokens): their block gradients, sums over the tokens, live on that mesh."""
  mesh = jax.typeof(x).sharding.mesh
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def put(a):
    return jax.sharding.reshard(a, replicated) if jax.typeof(a).sharding.mesh.empty else a

  return jax.tree.map(put, arrays)


def _varying(x) -> frozenset:
  """The ``shard_map`` mesh axes ``x`` varies over (empty outside ``shard_map``)."""
  return jax.typeof(x).mat.varying


def _same_varying_axes(*arrays, axis_name=None):
  """Inside ``shard_map``: the arrays (pytrees) typed as varying over the same mesh axes.

  The custom_vjps combine ``hidden``, ``weight`` and ``labels`` that may vary
  over different axes (tokens sharded over ``data``, the weight over the
  vocabulary axis ``axis_name``). Casting each to varying over the union makes
  autodiff sum the per-device partial gradients of an input that was
  replicated over an axis (the transpose of the cast is a ``psum``), so
  ``hidden`` gets its gradient summed over the vocabulary shards and ``weight``
  over the token shards. Outside ``shard_map`` nothing varies and nothing
  changes.
  """
  leaves = jax.tree.leaves(arrays)
  axes = set() if axis_name is None else {axis_name}
  axes = axes.union(*(_varying(a) for a in leaves))

  def cast(a):
    missing = tuple(sorted(axes - _varying(a)))
    return lax.pcast(a, missing, to="varying") if missing else a

  return jax.tree.map(cast, arrays)


# The loss ----------------------------------------------------------------------------------------


def _chunk(chunk_size, tokens: int, vocab: int, by_tokens: bool) -> int:
  """Tokens per block (``by_tokens``) or classes per block."""
  if chunk_size is None:
    if by_tokens:
      chunk_size = max(8, _BLOCK_ELEMENTS // max(vocab, 1))
    else:  # in multiples of 128 columns
      chunk_size = min(4096, max(128, (_VOCAB_BLOCK_ELEMENTS // max(min(tokens, _VOCAB_ROWS), 1)) // 128 * 128))
  ok = isinstance(chunk_size, (int, np.integer)) and not isinstance(chunk_size, bool) and chunk_size > 0
  _checks.option("chunk_size", chunk_size, bool(ok), "a positive int or None")
  return int(min(chunk_size, max(tokens if by_tokens else vocab, 1)))


def _by_tokens(ordering, reduction, axis_name, hidden, weight, others, tokens: int) -> bool:
  """The ordering (see linear_cross_entropy): token blocks for a mean or sum whose float32 weight
  gradient accumulator is at most ``_TOKEN_PATH_MAX_BYTES``, with tokens unsharded or sharded as
  :func:`_token_axes` allows, unless ``ordering`` says. ``hidden`` is ``[tokens, D]``."""
  if ordering not in (None, "tokens", "vocabulary"):
    raise ValueError(f"{_checks.name()}: `ordering` must be None, 'tokens' or 'vocabulary', got {ordering!r}.")
  sharded_ok = not _batch_sharded(hidden) or _token_axes(hidden, (weight, *others)) is not None
  possible = reduction != "none" and axis_name is None and sharded_ok
  if ordering == "tokens" and not possible:
    raise ValueError(
      f"{_checks.name()}: `ordering='tokens'` needs reduction 'mean' or 'sum', no `axis_name`, and tokens"
      " unsharded or sharded in the types along the token axis only (evenly, the weight, bias and class"
      " weights replicated)."
    )
  if ordering is not None:
    return ordering == "tokens" and tokens > 0
  return possible and tokens > 0 and weight.size * 4 <= _TOKEN_PATH_MAX_BYTES


@loss
def linear_cross_entropy(
  hidden: ArrayLike,
  weight: ArrayLike,
  labels: ArrayLike,
  *,
  bias: ArrayLike | None = None,
  chunk_size: Static[int | None] = None,
  label_smoothing: Numeric = 0.0,
  class_weights: ArrayLike | None = None,
  ignore_index: Static[int | None] = None,
  z_loss: Numeric = 0.0,
  softcap: Numeric | None = None,
  weight_layout: Static[str] = "vd",
  ordering: Static[str | None] = None,
  axis_name: Static[str | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Cross-entropy of a linear layer's logits, without materialising the logits.

  .. math::
    x_{ic} = h_i \cdot W_c + b_c, \qquad z_{ic} = \kappa \tanh(x_{ic} / \kappa), \qquad
    \ell_i = \sum_c w_c\, q_{ic} (\mathrm{lse}_i - z_{ic}) + \lambda_z\, \mathrm{lse}_i^2, \qquad
    \mathrm{lse}_i = \log \sum_c e^{z_{ic}}

  with ``q`` the one-hot label (or the probability targets) mixed with the
  uniform distribution by ``label_smoothing`` ``epsilon``, class weights ``w``
  and no capping (``z = x``) without ``softcap``. Equal, in value and in
  gradients, to ``jl.cross_entropy(hidden @ weight.T + bias, labels, ...)`` with
  the same options (class weights enter as torch's ``weight=``, also with label
  smoothing), but the ``[tokens, V]`` logits never exist.

  Two orderings (see the module docstring), chosen by one rule: a ``"mean"`` or
  ``"sum"`` whose float32 weight-gradient accumulator, ``4 V D`` bytes, is at
  most 256 MiB streams over blocks of ``chunk_size`` tokens against the whole
  vocabulary and forms the gradients in the forward pass (three matrix
  products, as the naive path: the fastest on CPU). Tokens sharded in the
  types (explicit mesh axes) with a replicated weight take it too, each device
  on its own tokens (``chunk_size`` per block) with one reduction of the
  weight gradient at the end. Larger heads (the memory floor: at 8192 tokens,
  Llama-3-8B's and Gemma-2-2B's heads take less than 256 MiB of XLA
  temporaries beyond the gradients), ``reduction="none"``, ``axis_name`` and
  tokens sharded otherwise (unevenly, or next to a sharded weight) stream
  over blocks of ``chunk_size`` classes: three numbers per token from a first
  pass, then each block of logits is recomputed and its block of the weight
  gradient completed once (four matrix products, no ``[V, D]`` float32
  buffer).

  Args:
    hidden: floating array ``[..., D]``: the features of each token (leading
      dimensions are batch).
    weight: floating array ``[V, D]``, one row per class (the layout of an
      embedding table, of ``torch.nn.Linear.weight`` and of
      ``torch.nn.functional.linear_cross_entropy``), or ``[D, V]`` with
      ``weight_layout="dv"``.
    labels: integer class indices ``[...]`` in ``[0, V)`` (the shape of
      ``hidden`` without its last axis), or floating class probabilities
      ``[..., V]`` (with ``axis_name``, this device's ``V / n`` columns).
    bias: optional floating array ``[V]`` added to the logits.
    chunk_size: tokens per block (token path) or classes per block
      (vocabulary path, see above); ``None`` (default) picks about 8M logits
      per token block, ``8M / V`` tokens (256 for ``V = 32768``), or about 2M
      per vocabulary block of 2048 tokens (all the tokens where they are
      sharded): 1024 classes, a multiple of 128 between 128 and 4096. A given
      ``chunk_size`` makes the vocabulary path's blocks ``chunk_size`` tokens
      by ``chunk_size`` classes.
    label_smoothing: ``epsilon`` in ``[0, 1]``: the target mixes the labels with
      the uniform distribution over the ``V`` classes (as
      ``torch.nn.functional.cross_entropy``). May be traced (a 0-d array or
      tracer; its gradient is exact); a traced value outside ``[0, 1]`` gives
      a meaningless loss (:func:`jaxloss.checked` reports it).
    class_weights: optional ``[V]`` weight of each class (torch's ``weight=``;
      with ``axis_name``, this device's ``V / n``): the target term is weighted
      by ``w_y``, the smoothing term by each ``w_c``, and for integer labels the
      mean divides by the summed ``w_y`` of the counted tokens.
    ignore_index: tokens with this label have loss 0, a zero gradient and do
      not count in the mean (``None``, the default, ignores nothing).
    z_loss: ``lambda_z >= 0``: weight of the auxiliary ``lse**2`` term (PaLM),
      which keeps the softmax normaliser near 1; added to every token's loss.
      May be traced; a traced negative value rewards a large normaliser
      (:func:`jaxloss.checked` reports it).
    softcap: optional ``kappa > 0``: the logits become
      ``kappa * tanh(logits / kappa)`` before the softmax (Gemma 2's
      ``final_logit_softcapping``), with the exact gradient; None (default) or
      inf leaves them as they are. May be traced (a traced inf is exactly no
      capping); a traced ``kappa <= 0`` gives a meaningless loss
      (:func:`jaxloss.checked` reports it).
    weight_layout: ``"vd"`` (default) for a ``[V, D]`` weight, ``"dv"`` for a
      ``[D, V]`` kernel (Flax ``Dense`` / ``nnx.Linear``): its blocks are
      column slices, multiplied as they are (no transposed copy of the
      kernel), and its gradient comes back ``[D, V]``.
    ordering: ``None`` (default) for the rule above, ``"tokens"`` or
      ``"vocabulary"`` to choose the token or vocabulary blocks (``"tokens"``
      needs a mean or sum, no ``axis_name``, and tokens unsharded or evenly
      sharded along their axis with the weight, bias and class weights
      replicated).
    axis_name: ``None``, or the name of a ``shard_map`` mesh axis over which
      ``weight`` (and ``bias``, ``class_weights``) are sharded along the
      vocabulary: each device holds ``V / n`` consecutive classes (device
      ``k`` the ``k``-th block), the full ``hidden`` and the (global) integer
      ``labels``. The log-sum-exp and the target terms are combined with
      ``pmax`` / ``psum`` over the axis, so the loss equals the unsharded one,
      gradients flow to each shard, and no device computes more than its
      ``[tokens, V / n]`` share.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``, over the tokens
      this call sees (inside ``shard_map``, the local ones).
    weights: optional per-token weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``; False tokens count
      as ignored (their ``hidden`` may hold inf or NaN).

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``. Half-precision inputs give
    float32 (the matrix products take the inputs' dtype and accumulate in
    float32), float64 inputs give float64.

  Edges:
    Smooth in every input and in the traced options. It is a
    ``jax.custom_vjp``: reverse mode (``grad``, ``vjp``, ``jacrev``, also
    nested) works, forward mode (``jvp``, ``jacfwd``, ``hessian``) raises; use
    explicit logits and :func:`jaxloss.cross_entropy` for those. An integer
    label outside ``[0, V)`` (not ``ignore_index``) gives that token a NaN loss
    and a zero gradient, as :func:`jaxloss.cross_entropy` (checked mode
    reports it). An all-ignored or empty mean is 0 with a zero gradient
    (torch gives NaN).

  References:
    Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models"
    (Cut Cross-Entropy), ICLR 2025; Hsu et al., "Liger Kernel", 2024; the
    z-loss: Chowdhery et al., "PaLM", 2022; soft-capping: Gemma Team,
    "Gemma 2", 2024. Matches ``torch.nn.functional.linear_cross_entropy``
    (same weight layout; its ``ignore_index`` defaults to -100, this one to
    None).

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
  if weight_layout not in ("vd", "dv"):
    raise ValueError(f"{_checks.name()}: `weight_layout` must be 'vd' or 'dv', got {weight_layout!r}.")
  h = _checks.floating("hidden", hidden)
  w = _checks.floating("weight", weight)
  b = None if bias is None else _checks.floating("bias", bias)
  if h.ndim < 1:
    raise ValueError(f"{_checks.name()}: `hidden` must have a feature axis, shape [..., D]; got a scalar.")
  feature_axis = 1 if weight_layout == "vd" else 0
  if w.ndim != 2 or w.shape[feature_axis] != h.shape[-1]:
    layout = "[V, D]" if weight_layout == "vd" else "[D, V]"
    other = " For a [D, V] kernel pass weight_layout='dv'." if weight_layout == "vd" else ""
    raise ValueError(
      f"{_checks.name()}: `weight` must have shape {layout} with D = hidden.shape[-1] = {h.shape[-1]},"
      f" got weight.shape={w.shape}.{other}"
    )
  local_vocab = w.shape[1 - feature_axis]
  if b is not None and b.shape != (local_vocab,):
    raise ValueError(
      f"{_checks.name()}: `bias` must have shape ({local_vocab},) (the classes of `weight`), got bias.shape={b.shape}."
    )
  ignore_index = _inputs.ignore_index(ignore_index)
  vocab = local_vocab if axis_name is None else local_vocab * lax.axis_size(axis_name)
  batch = h.shape[:-1]
  probabilities = jnp.issubdtype(jnp.result_type(labels), jnp.floating)
  if probabilities:
    if ignore_index is not None:
      raise ValueError(f"{_checks.name()}: `ignore_index` applies to integer labels only, got floating labels.")
    probs = _checks.floating("labels", labels)
    if probs.shape != (*batch, local_vocab):
      raise ValueError(
        f"{_checks.name()}: floating `labels` (probabilities) must have shape {(*batch, local_vocab)}"
        f" (hidden.shape[:-1] and the classes of `weight`), got labels.shape={probs.shape}."
      )
    mask = _inputs.mask(where, batch, of="`labels`")
    y, in_range = None, None
  else:
    y = _checks.integer("labels", labels)
    if y.shape != batch:
      raise ValueError(
        f"{_checks.name()}: `labels` must have shape {batch} (hidden.shape[:-1]), got labels.shape={y.shape}."
      )
    classes = _inputs.class_labels("hidden", h, y, where, ignore_index, num_classes=vocab)
    y, in_range, mask, probs = classes.index, classes.in_range, classes.mask, None
    if mask is not None:
      in_range = in_range | ~mask  # a masked or ignored label is never read

  dtype = _checks.compute_dtype(h, w, b)
  if h.dtype != w.dtype:
    h, w = h.astype(dtype), w.astype(dtype)
  b = None if b is None else b.astype(dtype)
  options: dict[str, Any] = {
    "label_smoothing": _inputs.label_smoothing(label_smoothing, dtype),
    "z_loss": _inputs.number("z_loss", z_loss, dtype, lambda z: z >= 0, "a non-negative number"),
    "softcap": None
    if softcap is None
    else _inputs.number("softcap", softcap, dtype, lambda c: c > 0, "None or positive", infinite_ok=True),
  }
  class_w = _inputs.class_weights("class_weights", class_weights, local_vocab, dtype)
  h = _inputs.zero_masked(mask, h, axis=-1)
  if probs is not None:
    probs = _inputs.zero_masked(mask, probs.astype(dtype), axis=-1)
    _checks.debug_probabilities(labels=probs)
  _checks.debug_no_nan(hidden=h)

  tokens = int(np.prod(batch))
  flat_h = h.reshape(tokens, h.shape[-1])
  by_tokens = _by_tokens(ordering, reduction, axis_name, flat_h, w, (b, class_w), tokens)
  chunk = _chunk(chunk_size, tokens, local_vocab, by_tokens)
  traced = {k: v for k, v in options.items() if _inputs.is_array(v)}
  constants = tuple((k, v) for k, v in options.items() if not _inputs.is_array(v))
  # The vocabulary path's token blocks (contiguous rows): all the tokens where they are sharded in the types.
  rows = max(tokens, 1) if _batch_sharded(h) else max(1, min(tokens, chunk_size or _VOCAB_ROWS))
  config = _Config(chunk, rows, weight_layout, constants, vocab)

  flat_y = None if y is None else y.reshape(tokens)
  flat_p = None
  # The target mass T_i = sum_c w_c q_ic: the class weight of an integer label, the weighted sum of probabilities.
  if probs is None:
    mass = jnp.ones((tokens,), dtype) if class_w is None else _class_weight_of(class_w, flat_y, axis_name, local_vocab)
  else:
    flat_p = probs.reshape(tokens, local_vocab)
    mass = jnp.sum(flat_p if class_w is None else flat_p * class_w[None, :], axis=-1)
    if axis_name is not None:
      mass = lax.psum(mass, axis_name)
  # torch's class-weighted mean divides by the target weights of integer labels.
  count_weights = None if class_w is None or probs is not None else mass.reshape(batch)

  if by_tokens:
    # The reduction is linear in the per-token losses: its gradient is their coefficients.
    reduced = lambda per_token: _reduce.reduce(
      per_token, reduction=reduction, weights=weights, where=mask, count_weights=count_weights
    )
    coefficients = jax.grad(reduced)(jnp.zeros(batch, dtype)).reshape(tokens)
    outside = jnp.zeros((tokens,), bool) if in_range is None else ~in_range.reshape(tokens)
    per_token = _PerToken(flat_h, flat_y, flat_p, mass, coefficients, outside)
    if _batch_sharded(flat_h):
      return _token_sharded_sum(config, per_token, w, b, class_w, traced)
    return _token_stream(config, per_token, w, b, class_w, traced)

  if axis_name is not None and flat_y is not None:
    # This device's classes are [offset, offset + local_vocab): other labels select no column.
    flat_y = flat_y - (lax.axis_index(axis_name) * local_vocab).astype(flat_y.dtype)
  if _batch_sharded(flat_h):
    w, b, class_w, traced = _on_mesh_of(flat_h, (w, b, class_w, traced))
  flat_h, w, b, flat_y, flat_p, class_w, traced = _same_varying_axes(
    flat_h, w, b, flat_y, flat_p, class_w, traced, axis_name=axis_name
  )
  lse, a, s = _logit_stats(config, flat_h, w, b, flat_y, flat_p, class_w, traced)
  total_w = vocab if class_w is None else jnp.sum(class_w)
  if axis_name is not None:
    top = lax.pmax(lax.stop_gradient(lse), axis_name)
    lse = top + jnp.log(lax.psum(jnp.exp(lse - top), axis_name))
    a, s = lax.psum((a, s), axis_name)
    if class_w is not None:
      total_w = lax.psum(total_w, axis_name)
  losses = _per_token(lse, a, s, mass, total_w, vocab, {**options}).reshape(batch)
  if in_range is not None:
    losses = jnp.where(in_range, losses, jnp.nan)
  return _reduce.reduce(losses, reduction=reduction, weights=weights, where=mask, count_weights=count_weights)


def _class_weight_of(class_w, labels, axis_name, local_vocab):
  """``class_w[labels]``; with ``axis_name``, summed over the shards (only the one holding the class has it)."""
  if axis_name is None:
    return class_w.at[labels].get(mode="promise_in_bounds", out_sharding=jax.typeof(labels).sharding)
  local = labels - (lax.axis_index(axis_name) * local_vocab).astype(labels.dtype)
  here = (local >= 0) & (local < local_vocab)
  picked = class_w.at[jnp.where(here, local, 0)].get(mode="promise_in_bounds")
  return lax.psum(jnp.where(here, picked, 0), axis_name)
