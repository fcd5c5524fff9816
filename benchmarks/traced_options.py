"""``python -m benchmarks.traced_options``: the cost of a traced numeric option.

Every numeric option may be a Python number (a compile-time constant) or an
array (a traced input: one program for all values, ``vmap`` and ``grad`` over
it). This measures, for each loss and option at a standard size,
``jax.value_and_grad`` with the option traced against the same call with the
option as a constant, interleaved in rounds (each round times both, in
alternating order), and prints the median per-round ratio traced / constant
with the load average. ``--out FILE.json`` writes the figures; ``--filter
REGEX`` selects cases by name; ``--rounds N`` (default 15).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl


def _normal(*shape):
  def make(rng):
    return rng.standard_normal(shape, np.float32)

  return make


def _elementwise(n=10**7):
  return lambda rng: (rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32))


def _positive(n=10**7):
  return lambda rng: (rng.uniform(0.1, 3.0, n).astype(np.float32), rng.uniform(0.1, 3.0, n).astype(np.float32))


def _signs(n=10**7):
  return lambda rng: (
    rng.standard_normal(n, np.float32),
    np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0).astype(np.float32),
  )


def _binary(n=10**7):
  return lambda rng: (rng.standard_normal(n, np.float32), (rng.uniform(size=n) < 0.3).astype(np.float32))


def _classes(b=1024, c=8192):
  return lambda rng: (rng.standard_normal((b, c), np.float32), rng.integers(0, c, b).astype(np.int32))


def _gaussian(n=10**7):
  return lambda rng: (
    rng.standard_normal(n, np.float32),
    rng.standard_normal(n, np.float32),
    rng.uniform(0.1, 2.0, n).astype(np.float32),
  )


def _triplets(b=16384, d=512):
  return lambda rng: tuple(rng.standard_normal((b, d), np.float32) for _ in range(3))


def _pairs(b=65536, d=128, labels=(0.0, 1.0)):
  def make(rng):
    x1, x2 = rng.standard_normal((b, d), np.float32), rng.standard_normal((b, d), np.float32)
    return x1, x2, rng.choice(np.asarray(labels, np.float32), b)

  return make


def _sets(b=1024, d=128):
  return lambda rng: (rng.standard_normal((b, d), np.float32), np.repeat(np.arange(b // 2), 2).astype(np.int32))


def _lists(b=4096, size=32):
  return lambda rng: (rng.standard_normal((b, size), np.float32), rng.integers(0, 4, (b, size)).astype(np.float32))


def _masks(n=16, pixels=262144 // 4, classes=8):
  return lambda rng: (
    rng.uniform(size=(n, pixels, classes)).astype(np.float32),
    (rng.uniform(size=(n, pixels, classes)) < 0.3).astype(np.float32),
  )


def _tokens(n=2048, d=512, v=16384):
  return lambda rng: (
    rng.standard_normal((n, d), np.float32) / 8,
    rng.standard_normal((v, d), np.float32) / 8,
    rng.integers(0, v, n).astype(np.int32),
  )


def _probabilities(b=1024, c=1024):
  return lambda rng: (rng.uniform(size=(b, c)).astype(np.float32), (rng.uniform(size=(b, c)) < 0.3).astype(np.float32))


def _binary_lists(b=4096, size=32):
  return lambda rng: (
    rng.standard_normal((b, size), np.float32),
    (rng.uniform(size=(b, size)) < 0.3).astype(np.float32),
  )


def _calibration_sets(n=8192, c=16):
  return lambda rng: (rng.standard_normal((n, c), np.float32), rng.integers(0, c, n).astype(np.int32))


def _views(b=1024, d=128):
  return lambda rng: (rng.standard_normal((b, d), np.float32), rng.standard_normal((b, d), np.float32))


def _faces(b=1024, d=128, c=4096):
  return lambda rng: (
    rng.standard_normal((b, d), np.float32),
    rng.standard_normal((c, d), np.float32),
    rng.integers(0, c, b).astype(np.int32),
  )


# (name, loss, make, options, differentiated inputs)
CASES: list[tuple[str, Callable, Callable, dict, tuple[int, ...]]] = [
  ("huber", jl.huber, _elementwise(), {"delta": 0.7}, (0,)),
  ("smooth_l1", jl.smooth_l1, _elementwise(), {"beta": 0.6}, (0,)),
  ("quantile", jl.quantile, _elementwise(), {"q": 0.3}, (0,)),
  ("mape", jl.mape, _elementwise(), {"eps": 0.5}, (0,)),
  ("poisson_nll-rate", jl.poisson_nll, _positive(), {"eps": 0.1}, (0,)),
  ("gaussian_nll", jl.gaussian_nll, _gaussian(), {"eps": 0.2}, (0, 2)),
  ("hinge", jl.hinge, _signs(), {"margin": 0.8}, (0,)),
  ("squared_hinge", jl.squared_hinge, _signs(), {"margin": 0.8}, (0,)),
  ("hinge_embedding", jl.hinge_embedding, _signs(), {"margin": 0.8}, (0,)),
  ("sigmoid_focal", jl.sigmoid_focal, _binary(), {"alpha": 0.25, "gamma": 2.0}, (0,)),
  ("cross_entropy-smoothing", jl.cross_entropy, _classes(), {"label_smoothing": 0.1}, (0,)),
  ("cross_entropy-z_loss-softcap", jl.cross_entropy, _classes(), {"z_loss": 1e-4, "softcap": 30.0}, (0,)),
  ("softmax_focal", jl.softmax_focal, _classes(), {"gamma": 2.0}, (0,)),
  ("multi_margin", jl.multi_margin, _classes(1024, 1024), {"margin": 0.8}, (0,)),
  ("poly_cross_entropy", jl.poly_cross_entropy, _classes(), {"epsilon": 1.0}, (0,)),
  ("margin_ranking", jl.margin_ranking, lambda rng: (*_elementwise()(rng), _signs()(rng)[1]), {"margin": 0.3}, (0, 1)),
  ("triplet_margin", jl.triplet_margin, _triplets(), {"margin": 0.8, "eps": 1e-6}, (0, 1, 2)),
  ("contrastive", jl.contrastive, _pairs(), {"margin": 1.3}, (0, 1)),
  ("cosine_embedding", jl.cosine_embedding, _pairs(labels=(-1.0, 1.0)), {"margin": 0.2}, (0, 1)),
  ("ntxent", jl.ntxent, _sets(), {"temperature": 0.1}, (0,)),
  ("pairwise_hinge", jl.pairwise_hinge, _lists(), {"margin": 0.7}, (0,)),
  ("dice", jl.dice, _masks(), {"smooth": 0.8}, (0,)),
  ("tversky", jl.tversky, _masks(), {"alpha": 0.3, "beta": 0.7, "smooth": 0.5}, (0,)),
  ("linear_cross_entropy", jl.linear_cross_entropy, _tokens(), {"label_smoothing": 0.1, "z_loss": 1e-4}, (0, 1)),
  ("confidence_penalty", jl.confidence_penalty, _classes(), {"beta": 0.1}, (0,)),
  ("soft_binned_ece", jl.soft_binned_ece, _calibration_sets(), {"temperature": 0.01}, (0,)),
  ("mmce", jl.mmce, _calibration_sets(2048), {"bandwidth": 0.4}, (0,)),
  ("soft_fbeta", jl.soft_fbeta, _probabilities(), {"beta": 2.0}, (0,)),
  ("auc_surrogate", jl.auc_surrogate, _binary_lists(), {"margin": 1.0}, (0,)),
  ("smooth_ap", jl.smooth_ap, _binary_lists(), {"temperature": 0.01}, (0,)),
  ("approx_ndcg", jl.approx_ndcg, _lists(), {"temperature": 1.0}, (0,)),
  ("clip", jl.clip, _views(), {"temperature": 0.07, "label_smoothing": 0.1}, (0, 1)),
  ("siglip", jl.siglip, _views(), {"temperature": 10.0, "bias": -10.0}, (0, 1)),
  ("supcon", jl.supcon, _sets(), {"temperature": 0.1}, (0,)),
  ("angular_margin", jl.angular_margin, _faces(), {"scale": 64.0, "m1": 1.0, "m2": 0.5, "m3": 0.0}, (0, 1)),
  ("circle", jl.circle, _sets(), {"margin": 0.25, "gamma": 256.0}, (0,)),
  ("multi_similarity", jl.multi_similarity, _sets(), {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}, (0,)),
  ("batch_triplet", jl.batch_triplet, _sets(), {"margin": 1.0}, (0,)),
]


def _time(fn, args, calls: int) -> float:
  start = time.perf_counter()
  for _ in range(calls):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / calls


def measure(name, loss, make, options, diff, rounds: int) -> dict:
  rng = np.random.default_rng(0)
  args = tuple(jnp.asarray(a) for a in make(rng))
  arrays = {k: jnp.asarray(v, jnp.float32) for k, v in options.items()}

  def constant(*a):
    return loss(*a, **options)

  def traced(*a):
    *a, opts = a
    return loss(*a, **opts)

  argnums = diff
  f_constant = jax.jit(jax.value_and_grad(constant, argnums=argnums))
  f_traced = jax.jit(jax.value_and_grad(traced, argnums=argnums))
  jax.block_until_ready(f_constant(*args))
  jax.block_until_ready(f_traced(*args, arrays))
  once = _time(f_constant, args, 1)
  calls = max(1, int(0.02 / max(once, 1e-6)))
  ratios, times = [], {"constant": [], "traced": []}
  for r in range(rounds):
    order = ("constant", "traced") if r % 2 == 0 else ("traced", "constant")
    sample = {}
    for kind in order:
      sample[kind] = _time(f_constant, args, calls) if kind == "constant" else _time(f_traced, (*args, arrays), calls)
      times[kind].append(sample[kind])
    ratios.append(sample["traced"] / sample["constant"])
  return {
    "name": name,
    "options": sorted(options),
    "constant_ms": 1e3 * float(np.median(times["constant"])),
    "traced_ms": 1e3 * float(np.median(times["traced"])),
    "ratio": float(np.median(ratios)),
    "ratio_quartiles": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
  }


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.traced_options", description=__doc__.splitlines()[0])
  parser.add_argument("--filter", default="")
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  results = []
  print(f"{'case':32} {'options':34} {'constant ms':>12} {'traced ms':>10} {'traced/const':>13}  load")
  for case in CASES:
    if not re.search(args.filter, case[0]):
      continue
    row = measure(*case, rounds=args.rounds)
    row["load_average"] = list(os.getloadavg())
    results.append(row)
    low, high = row["ratio_quartiles"]
    print(
      f"{row['name']:32} {','.join(row['options']):34} {row['constant_ms']:12.2f} {row['traced_ms']:10.2f}"
      f" {row['ratio']:8.2f} [{low:.2f}-{high:.2f}]  {row['load_average'][0]:.1f}",
      flush=True,
    )
  if args.out:
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__}
    with open(args.out, "w") as f:
      json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
  main()
