"""Collectives for set losses whose batch is sharded over a ``shard_map`` mesh axis (global negatives).

With the batch of a contrastive loss split over the devices of a mesh axis
``axis_name``, each device holds ``b = B / n`` rows and must score them against
the columns of every device. Two ways, both exact (the loss and every local
row's gradient equal the unsharded loss's):

* :func:`gather`: an all-gather of the columns (CLIP, SupCon, NT-Xent). Its
  transpose is a reduce-scatter, so each device's rows receive the cotangents
  of all their copies, summed over the devices: the gradient of the global
  loss, not of a per-shard loss. Memory ``O(b * B)`` for the similarities.
* :func:`ring`: the columns travel around the ring (``ppermute``) in blocks of
  ``b`` while each device accumulates its rows' losses (SigLIP, whose loss is
  a sum over pairs): no device ever holds more than a ``b x b`` block, and its
  backward pass sends the blocks around again with their gradient
  accumulators, so memory is ``O(b * b + b * D)`` in both passes.

:func:`reduce` is :func:`jaxloss._reduce.reduce` over the whole sharded batch:
the sums and the mean's denominator are ``psum``-ed over the axis, so the value
(replicated on every device) is the unsharded loss's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxloss import _reduce


def varying(x: jax.Array, axis_name: str) -> jax.Array:
  """``x`` typed as varying over ``axis_name`` (inside ``shard_map``); its transpose ``psum``-s a replicated input's
  per-device cotangents."""
  if axis_name in jax.typeof(x).mat.varying:
    return x
  return lax.pcast(x, (axis_name,), to="varying")


def gather(x: jax.Array, axis_name: str, axis: int) -> jax.Array:
  """Every device's ``x`` concatenated along ``axis`` in device order (device ``k``'s block ``k``)."""
  return lax.all_gather(varying(x, axis_name), axis_name, axis=axis % x.ndim, tiled=True)


def replicated(x: jax.Array, axis: int) -> jax.Array:
  """``x`` with ``axis`` replicated where its type shards it (explicit mesh axes, outside ``shard_map``), else ``x``.

  The columns of a set loss whose batch is sharded in the types: a
  ``[B@data, B@data]`` similarity would be illegal, ``[B@data, B]`` is not.
  """
  spec = getattr(jax.typeof(x).sharding, "spec", None)
  axis = axis % x.ndim
  if spec is None or axis >= len(spec) or spec[axis] is None:
    return x
  spec = P(*(None if i == axis else a for i, a in enumerate(spec)))
  return jax.sharding.reshard(x, jax.sharding.NamedSharding(jax.typeof(x).sharding.mesh, spec))


def sharded(x: jax.Array) -> bool:
  """Whether the type of ``x`` shards it over a mesh axis (explicit mesh axes, outside ``shard_map``)."""
  spec = getattr(jax.typeof(x).sharding, "spec", None)
  return spec is not None and any(a is not None for a in spec)


def like(mask: jax.Array, x: jax.Array) -> jax.Array:
  """``mask`` (e.g. built from ``iota``, replicated) with the sharding of ``x`` where its type shards it, else ``mask``.

  Under explicit mesh axes a ``select`` takes its condition in the sharding of
  its cases: ``where(iota mask, x [B@data, B], ...)`` is otherwise a ShardingTypeError.
  """
  return jax.sharding.reshard(mask, jax.typeof(x).sharding) if sharded(x) else mask


def row_offset(rows: int, axis_name: str) -> jax.Array:
  """The position of this device's first row among the gathered ones (``rows`` per device)."""
  return lax.axis_index(axis_name) * rows


def reduce(loss: jax.Array, *, reduction: str, weights=None, where=None, axis_name: str | None) -> jax.Array:
  """:func:`jaxloss._reduce.reduce` of the local per-example ``loss`` over the batch of every device.

  ``"none"`` keeps the local values; ``"sum"`` and ``"mean"`` (``psum`` of the
  weighted sum over ``psum`` of the summed weights, 0 when nothing is kept)
  are the unsharded loss's, on every device.
  """
  if axis_name is None or reduction == "none":
    return _reduce.reduce(loss, reduction=reduction, weights=weights, where=where)
  total = _reduce.reduce(loss, reduction="sum", weights=weights, where=where)
  if reduction == "sum":
    return lax.psum(total, axis_name)
  count = _reduce.reduce(jnp.ones(loss.shape, loss.dtype), reduction="sum", weights=weights, where=where)
  total, count = lax.psum((total, count), axis_name)
  return _reduce.safe_divide(total, count)


Rows = Callable[..., jax.Array]


def ring(rows: Rows, x: jax.Array, y: jax.Array, valid: jax.Array, parameters: tuple, axis_name: str) -> jax.Array:
  """``sum`` over every device's column blocks of ``rows(x, y_block, offset, *parameters, valid_block)``.

  ``rows(x [..., b, D], y_block [..., b, D], offset, *parameters, valid_block
  [..., b]) -> [..., b]`` scores the local rows against one block of columns,
  whose own column for row ``r`` is ``offset + r`` (``b``, out of range, for
  another device's block); the result is its sum over the ``n`` blocks of the
  axis, each device's ``y`` and ``valid``, passed around the ring. The
  gradient is a ``jax.custom_vjp`` whose backward pass recomputes each block's
  scores and sends the column gradients around with the blocks, so only
  ``O(b * b)`` scores and ``O(b * D)`` columns exist at a time (autodiff of the
  loop would keep every block). Reverse mode only (``jvp`` raises).
  """
  x, y, valid = (varying(a, axis_name) for a in (x, y, valid))
  parameters = tuple(varying(jnp.asarray(p, x.dtype), axis_name) for p in parameters)
  return _ring(rows, axis_name, x, y, valid, parameters)


def _shift(axis_name: str, *blocks: jax.Array) -> tuple[jax.Array, ...]:
  """The blocks sent one device on around the ring (device ``k`` to ``k + 1``)."""
  n = lax.axis_size(axis_name)
  return tuple(lax.ppermute(a, axis_name, [(k, (k + 1) % n) for k in range(n)]) for a in blocks)


def _offset(step, rows: int) -> jax.Array:
  """At ``step`` ``k`` a device holds the block of device ``me - k``: its own columns only at step 0."""
  return jnp.where(step == 0, 0, rows)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _ring(rows: Rows, axis_name: str, x, y, valid, parameters):
  b = x.shape[-2]

  def step(k, carry):
    total, y_block, valid_block = carry
    y_block, valid_block = _shift(axis_name, y_block, valid_block)
    return total + rows(x, y_block, _offset(k, b), *parameters, valid_block), y_block, valid_block

  first = rows(x, y, _offset(0, b), *parameters, valid)
  return lax.fori_loop(1, lax.axis_size(axis_name), step, (first, y, valid))[0]


def _ring_forward(rows, axis_name, x, y, valid, parameters):
  return _ring(rows, axis_name, x, y, valid, parameters), (x, y, valid, parameters)


def _ring_backward(rows, axis_name, residuals, cotangent):
  x, y, valid, parameters = residuals
  b = x.shape[-2]
  zeros = lambda a: varying(jnp.zeros(a.shape, a.dtype), axis_name)

  def step(k, carry):
    d_x, d_parameters, y_block, valid_block, d_block = carry
    score = lambda x, y_block, parameters: rows(x, y_block, _offset(k, b), *parameters, valid_block)
    _, pullback = jax.vjp(score, x, y_block, parameters)
    g_x, g_block, g_parameters = pullback(cotangent)
    d_parameters = jax.tree.map(jnp.add, d_parameters, g_parameters)
    # After n shifts each block and its accumulated gradient are back on the device they came from.
    y_block, valid_block, d_block = _shift(axis_name, y_block, valid_block, d_block + g_block)
    return d_x + g_x, d_parameters, y_block, valid_block, d_block

  start = (zeros(x), tuple(zeros(p) for p in parameters), y, valid, zeros(y))
  d_x, d_parameters, _, _, d_y = lax.fori_loop(0, lax.axis_size(axis_name), step, start)
  return d_x, d_y, None, d_parameters


_ring.defvjp(_ring_forward, _ring_backward)
