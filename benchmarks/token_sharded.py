"""Time of ``linear_cross_entropy`` with the tokens sharded on 8 virtual CPU devices, against the naive path.

``python -m benchmarks.token_sharded [--size N D V] [--rounds R]`` runs, in this
process with ``--xla_force_host_platform_device_count=8`` (set before JAX
starts, so not in the harness, which keeps one device),
``jit(value_and_grad(f, argnums=(0, 1)))`` in float32 with ``hidden`` and
``labels`` sharded over an explicit ``data`` mesh axis (``jax.set_mesh``) and
``weight`` replicated, for:

* ``naive``: ``cross_entropy(hidden @ weight.T, labels)``;
* ``default``: :func:`jaxloss.linear_cross_entropy` (the rule; the token ordering
  where the weight-gradient accumulator fits);
* ``vocabulary``: the same with ``ordering="vocabulary"``.

Rounds are interleaved (the order rotated each round); printed: each round's
times with the load average, then the median time and the median of the
per-round ratios to ``naive``.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss as jl


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, nargs=3, default=(8192, 512, 32768), metavar=("N", "D", "V"))
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()
  n, d, v = args.size
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  rng = np.random.default_rng(0)
  with jax.set_mesh(mesh):
    put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))
    hidden = put(jnp.asarray(rng.normal(size=(n, d)) / np.sqrt(d), jnp.float32), P("data"))
    weight = put(jnp.asarray(rng.normal(size=(v, d)), jnp.float32), P())
    labels = put(jnp.asarray(rng.integers(0, v, n)), P("data"))
    losses = {
      "naive": lambda h, w: jl.cross_entropy(h @ w.T, labels),
      "default": lambda h, w: jl.linear_cross_entropy(h, w, labels),
      "vocabulary": lambda h, w: jl.linear_cross_entropy(h, w, labels, ordering="vocabulary"),
    }
    steps = {name: jax.jit(jax.value_and_grad(f, argnums=(0, 1))) for name, f in losses.items()}
    for step in steps.values():  # compile and warm up
      jax.block_until_ready(step(hidden, weight))
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
      for name in names[r % len(names) :] + names[: r % len(names)]:
        start = time.perf_counter()
        jax.block_until_ready(steps[name](hidden, weight))
        times[name].append(time.perf_counter() - start)
      load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
      print(f"round {r}: " + ", ".join(f"{k} {t[-1]:.2f} s" for k, t in times.items()) + f" (load {load})", flush=True)
    naive = np.asarray(times["naive"])
    for name, t in times.items():
      print(f"{name}: median {np.median(t):.2f} s, {np.median(np.asarray(t) / naive):.3f}x naive (per-round median)")


if __name__ == "__main__":
  main()
