"""The case API: what a loss family module in ``benchmarks/cases/`` declares.

A family module ``benchmarks/cases/<family>.py`` exposes ``CASES``, a list of
:class:`Case`. The harness discovers every such module (:func:`all_cases`), and
for each case runs every size, dtype and mode (``forward`` and
``value_and_grad``) on every backend, through jaxloss and each available peer,
interleaved. A case author writes only callables and an input maker:

.. code-block:: python

  Case(
    name="huber",
    family="regression",
    loss=functools.partial(jl.huber, delta=1.0),          # jaxloss
    jnp=lambda p, t: jnp.mean(...),                       # the plain expression
    optax=lambda p, t: jnp.mean(optax.losses.huber_loss(p, t, delta=1.0)),
    torch=lambda p, t: torch_functional().huber_loss(p, t, delta=1.0),
    make=lambda rng, n: (rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)),
    sizes=(10**4, 10**6, 10**8),
    quick_sizes=(10**6,),
  )

Every callable takes the positional inputs ``make`` returns and returns a
scalar. Options are bound with ``functools.partial`` or a lambda: they are
compile-time constants, as in user code.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

MODES = ("forward", "value_and_grad")
PEERS = ("jnp", "optax", "torch")
IMPLEMENTATIONS = ("jaxloss", *PEERS)

Size = int | tuple[int, ...]


def default_bytes_moved(inputs: Sequence[np.ndarray], mode: str, diff: Sequence[int]) -> int:
  """The least traffic a fused kernel needs: read every input once, write each gradient once.

  This is the roofline model of an elementwise or row-wise loss: the scalar
  output is negligible, and ``value_and_grad`` also writes one gradient per
  differentiated input, in that input's dtype (JAX returns gradients in the
  input dtype).
  """
  read = sum(int(x.nbytes) for x in inputs)
  written = sum(int(inputs[i].nbytes) for i in diff) if mode == "value_and_grad" else 0
  return read + written


@dataclasses.dataclass(frozen=True)
class Case:
  """One loss with one set of options, and its peers.

  Attributes:
    name: the case name, ``"<loss>"`` or ``"<loss>-<options>"``; unique.
    family: the loss family (``"regression"``, ``"classification"``, ...): the
      report groups plots by it.
    loss: the jaxloss callable, ``loss(*inputs) -> scalar``.
    jnp: the plain jnp expression of the same loss with the same semantics
      (float32 compute for half inputs, as jaxloss), or None.
    optax: the optax equivalent, or None when optax has no such loss.
    torch: the PyTorch equivalent taking ``torch.Tensor`` inputs (on the
      backend's torch device), or None when torch has none. Import torch
      inside it (see :func:`torch_functional`): torch is optional.
    make: ``make(rng, size) -> tuple of NumPy arrays``, the positional inputs
      for one size. Floating arrays are float32; the harness casts them to each
      dtype of ``dtypes`` (integer arrays such as labels are left alone). Draw
      from ``rng`` only: it is seeded from the case name and size.
    sizes: the sizes of the full run. An int is a number of elements; a tuple is
      a shape the case's ``make`` understands (e.g. ``(batch, classes)``).
    quick_sizes: the sizes ``--quick`` runs (a representative subset; empty:
      not in ``--quick``).
    dtypes: floating dtypes of the full run, by name.
    quick_dtypes: dtypes ``--quick`` runs.
    smoke_size: the tiny size of ``--smoke`` (and the tests): set it for
      cases whose sizes are shapes.
    diff: positional inputs differentiated in ``value_and_grad`` mode.
    bytes_moved: ``bytes_moved(inputs, mode, diff) -> int``, the bytes a
      perfect implementation moves, for achieved GB/s and the fraction of the
      measured bandwidth. Default :func:`default_bytes_moved`.
    flops: optional ``flops(inputs, mode, diff) -> int`` for compute-bound cases
      (reported as GFLOP/s; no fraction, there is no compute probe).
  """

  name: str
  family: str
  loss: Callable[..., Any]
  make: Callable[[np.random.Generator, Size], tuple[np.ndarray, ...]]
  sizes: tuple[Size, ...]
  jnp: Callable[..., Any] | None = None
  optax: Callable[..., Any] | None = None
  torch: Callable[..., Any] | None = None
  quick_sizes: tuple[Size, ...] = ()
  dtypes: tuple[str, ...] = ("float32", "bfloat16")
  quick_dtypes: tuple[str, ...] = ("float32",)
  smoke_size: Size = 1000
  diff: tuple[int, ...] = (0,)
  bytes_moved: Callable[[Sequence[np.ndarray], str, Sequence[int]], int] = default_bytes_moved
  flops: Callable[[Sequence[np.ndarray], str, Sequence[int]], int] | None = None

  def peer(self, implementation: str) -> Callable[..., Any] | None:
    """The callable of ``implementation`` (``"jaxloss"`` or a peer name), or None."""
    return self.loss if implementation == "jaxloss" else getattr(self, implementation)


@dataclasses.dataclass(frozen=True)
class Variant:
  """One measured unit: a case at one size, dtype and mode."""

  case: Case
  size: Size
  dtype: str
  mode: str

  @property
  def id(self) -> str:
    """``family/name/dtype/mode/size``: what ``--filter`` matches and the JSON records."""
    return f"{self.case.family}/{self.case.name}/{self.dtype}/{self.mode}/{size_label(self.size)}"


def size_label(size: Size) -> str:
  """``10**7`` -> ``"1e7"``, ``3 * 10**6`` -> ``"3e6"``, ``(4096, 32768)`` -> ``"4096x32768"``."""
  if isinstance(size, tuple):
    return "x".join(str(s) for s in size)
  mantissa, exponent = size, 0
  while mantissa >= 10 and mantissa % 10 == 0:
    mantissa, exponent = mantissa // 10, exponent + 1
  return f"{mantissa}e{exponent}" if exponent >= 3 and mantissa < 10 else str(size)


def seed_for(seed: int, case: Case, size: Size) -> np.random.Generator:
  """A generator seeded from the run seed, the case name and the size (not the run order)."""
  key = [seed, zlib.crc32(case.name.encode()), zlib.crc32(size_label(size).encode())]
  return np.random.default_rng(key)


def torch_functional():
  """``torch.nn.functional``, imported on first use (torch is an optional peer)."""
  import torch.nn.functional

  return torch.nn.functional


def in_float32(fn: Callable[..., Any]) -> Callable[..., Any]:
  """``fn`` with half-precision inputs cast to float32 first: a jnp peer computing as jaxloss does."""

  @functools.wraps(fn)
  def wrapped(*arrays):
    return fn(*(a.astype(np.float32) if a.dtype in (jnp.bfloat16, jnp.float16) else a for a in arrays))

  return wrapped


def all_cases() -> list[Case]:
  """Every case of every family module in ``benchmarks/cases``, names checked unique."""
  from benchmarks import cases

  out: list[Case] = []
  for info in sorted(pkgutil.iter_modules(cases.__path__), key=lambda i: i.name):
    out.extend(importlib.import_module(f"benchmarks.cases.{info.name}").CASES)
  names = [c.name for c in out]
  duplicated = sorted({n for n in names if names.count(n) > 1})
  if duplicated:
    raise ValueError(f"benchmark case names must be unique, repeated: {duplicated}")
  return out


def variants(cases: Sequence[Case], *, quick: bool) -> list[Variant]:
  """Every (case, size, dtype, mode) of a full or ``--quick`` run, in run order.

  ``--quick`` runs each case's quick sizes and dtypes in ``value_and_grad``
  (what training runs), and ``forward`` for the first case of each family only:
  the main job stays within its time on 2 cores, where compiling three
  implementations is most of a variant's cost.
  """
  out = []
  families: set[str] = set()
  for case in cases:
    sizes, dtypes = (case.quick_sizes, case.quick_dtypes) if quick else (case.sizes, case.dtypes)
    modes = ("value_and_grad",) if quick and case.family in families else MODES
    if sizes and dtypes:
      families.add(case.family)
    for size in sizes:
      for dtype in dtypes:
        out.extend(Variant(case, size, dtype, mode) for mode in modes)
  return out
