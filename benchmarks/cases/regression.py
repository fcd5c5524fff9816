"""Benchmark cases of the regression losses (``jaxloss/regression.py``).

Every loss here is elementwise and memory-bound: the bytes-moved model is the
default (read the inputs, write the gradients). Peers: optax where it has the
loss (``squared_error``, ``huber_loss``, ``log_cosh``, reduced with
``jnp.mean``), the plain jnp expression for all, torch where
``torch.nn.functional`` has it.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, in_float32, torch_functional


def _normal_pair(rng, n):
  return rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)


def _positive_pair(rng, n):
  return rng.uniform(0.1, 3.0, n).astype(np.float32), rng.uniform(0.1, 3.0, n).astype(np.float32)


def _away_from_zero(rng, n):
  """Targets with |t| in [0.5, 2]: mape's floor never binds."""
  sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
  return rng.standard_normal(n, np.float32), (sign * rng.uniform(0.5, 2.0, n)).astype(np.float32)


def _counts(rng, n):
  return rng.standard_normal(n, np.float32), rng.poisson(2.0, n).astype(np.float32)


def _gaussian(rng, n):
  p, t = _normal_pair(rng, n)
  return p, t, rng.uniform(0.5, 2.0, n).astype(np.float32)


def _huber(e, delta):
  a = jnp.abs(e)
  return jnp.where(a < delta, 0.5 * e * e, delta * (a - 0.5 * delta))


def _case(name, loss, make=_normal_pair, **kwargs) -> Case:
  """A regression case: 10**4 (in cache) to 10**7 elements (beyond it); 10**6 in --quick.

  The losses optax also has go to 10**8 (``sizes=_LARGE``) and run in bfloat16
  too (``dtypes=_BOTH``): a full run of everything at 10**8 in both dtypes would
  take most of an hour on 2 cores, for curves that are flat beyond 10**7.
  """
  kwargs.setdefault("quick_sizes", (10**6,))
  kwargs.setdefault("dtypes", ("float32",))
  kwargs.setdefault("sizes", (10**4, 10**6, 10**7))
  return Case(name, "regression", loss, make, **kwargs)


_LARGE = (10**4, 10**6, 10**7, 10**8)
_BOTH = ("float32", "bfloat16")


_EPS = float(np.finfo(np.float64).eps)

CASES = [
  _case(
    "mse",
    jl.mse,
    jnp=in_float32(lambda p, t: jnp.mean((p - t) ** 2)),
    optax=lambda p, t: jnp.mean(optax.losses.squared_error(p, t)),
    sizes=_LARGE,
    dtypes=_BOTH,
    torch=lambda p, t: torch_functional().mse_loss(p, t),
    # 10**7 float32 value_and_grad is issue 2's acceptance figure.
    quick_sizes=(10**7,),
    quick_dtypes=("float32", "bfloat16"),
  ),
  _case(
    "mae",
    jl.mae,
    jnp=in_float32(lambda p, t: jnp.mean(jnp.abs(p - t))),
    torch=lambda p, t: torch_functional().l1_loss(p, t),
  ),
  _case("rmse", jl.rmse, jnp=in_float32(lambda p, t: jnp.sqrt(jnp.mean((p - t) ** 2)))),
  _case(
    "huber",
    jl.huber,
    jnp=in_float32(lambda p, t: jnp.mean(_huber(p - t, 1.0))),
    optax=lambda p, t: jnp.mean(optax.losses.huber_loss(p, t, delta=1.0)),
    sizes=_LARGE,
    dtypes=_BOTH,
    torch=lambda p, t: torch_functional().huber_loss(p, t, delta=1.0),
  ),
  _case(
    "smooth_l1",
    jl.smooth_l1,
    jnp=in_float32(lambda p, t: jnp.mean(_huber(p - t, 1.0))),  # beta=1 is huber with delta=1
    torch=lambda p, t: torch_functional().smooth_l1_loss(p, t, beta=1.0),
  ),
  _case(
    "log_cosh",
    jl.log_cosh,
    jnp=in_float32(lambda p, t: jnp.mean(jnp.log(jnp.cosh(p - t)))),
    optax=lambda p, t: jnp.mean(optax.losses.log_cosh(p, t)),
    dtypes=_BOTH,
  ),
  _case(
    "quantile",
    functools.partial(jl.quantile, q=0.9),
    jnp=in_float32(lambda p, t: jnp.mean(jnp.maximum(0.9 * (t - p), -0.1 * (t - p)))),
  ),
  _case(
    "msle",
    jl.msle,
    make=_positive_pair,
    jnp=in_float32(lambda p, t: jnp.mean((jnp.log1p(p) - jnp.log1p(t)) ** 2)),
  ),
  _case(
    "mape",
    jl.mape,
    make=_away_from_zero,
    jnp=in_float32(lambda p, t: jnp.mean(jnp.abs(p - t) / jnp.maximum(jnp.abs(t), _EPS))),
  ),
  _case(
    "poisson_nll",
    jl.poisson_nll,
    make=_counts,
    jnp=in_float32(lambda p, t: jnp.mean(jnp.exp(p) - t * p)),
    torch=lambda p, t: torch_functional().poisson_nll_loss(p, t, log_input=True, full=False),
  ),
  _case(
    "gaussian_nll",
    jl.gaussian_nll,
    make=_gaussian,
    jnp=in_float32(
      lambda p, t, v: jnp.mean(0.5 * (jnp.log(jnp.maximum(v, 1e-6)) + (p - t) ** 2 / jnp.maximum(v, 1e-6)))
    ),
    torch=lambda p, t, v: torch_functional().gaussian_nll_loss(p, t, v),
    diff=(0, 2),
  ),
]
