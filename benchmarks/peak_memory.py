"""Peak process memory of ``linear_cross_entropy`` against the naive path and torch, one process each.

``python -m benchmarks.peak_memory [--size N D V] [--calls K]`` runs, each in a
fresh subprocess, ``value_and_grad`` over ``hidden`` and ``weight`` of:

* ``jaxloss``: :func:`jaxloss.linear_cross_entropy` (jit-compiled);
* ``naive``: the logits, then :func:`jaxloss.cross_entropy` (jit-compiled);
* ``torch``: ``torch.nn.functional.linear_cross_entropy`` with its chunked
  implementation (``options=LinearCrossEntropyOptions()``);
* ``torch-naive``: the same with ``options=None`` (torch's logits path).

Each process creates its inputs on the device (no NumPy copies), records its
peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) as the
*baseline*, runs ``K`` calls, and records the peak again. Printed: the peak, the
peak above the baseline (what the loss and its gradient cost, compilation
included) and both as ratios to the naive path. The default size is issue 6's
acceptance shape, float32; ``--dtype bfloat16`` runs the same in bfloat16.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

IMPLEMENTATIONS = ("jaxloss", "naive", "torch", "torch-naive")


def _peak_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _jax_worker(implementation: str, n: int, d: int, v: int, calls: int, dtype: str = "float32") -> dict:
  import jax
  import jax.numpy as jnp
  from jax import lax

  import jaxloss as jl

  # Deterministic pseudo-random values written straight into the inputs: jax.random's temporaries
  # (as large as its output) would raise the high-water mark above what the loss needs.
  def inputs():
    index = lambda shape: lax.iota(jnp.float32, shape[0] * shape[1]).reshape(shape)
    hidden = jnp.sin(index((n, d)) * 12.9898) * 1.7
    weight = jnp.sin(index((v, d)) * 78.233) * (1.7 / d**0.5)
    labels = (lax.iota(jnp.int32, n) * 7919) % v
    return hidden.astype(dtype), weight.astype(dtype), labels

  hidden, weight, labels = jax.block_until_ready(jax.jit(inputs)())
  baseline = _peak_bytes()
  if implementation == "jaxloss":
    loss = jl.linear_cross_entropy
  else:
    loss = lambda h, w, y: jl.cross_entropy(jnp.matmul(h, w.T), y)
  f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  for _ in range(calls):
    value, _ = jax.block_until_ready(f(hidden, weight, labels))
  return {"baseline_bytes": baseline, "peak_bytes": _peak_bytes(), "value": float(value)}


def _torch_worker(implementation: str, n: int, d: int, v: int, calls: int, dtype: str = "float32") -> dict:
  import torch
  import torch.nn.functional as F

  generator = torch.Generator().manual_seed(0)
  kind = getattr(torch, dtype)
  hidden = torch.randn(n, d, generator=generator).to(kind).requires_grad_(True)
  weight = (torch.randn(v, d, generator=generator) / d**0.5).to(kind).requires_grad_(True)
  labels = torch.randint(0, v, (n,), generator=generator)
  baseline = _peak_bytes()
  options = torch.nn.LinearCrossEntropyOptions() if implementation == "torch" else None
  for _ in range(calls):
    value = F.linear_cross_entropy(hidden, weight, labels, options=options)
    torch.autograd.grad(value, (hidden, weight))
  return {"baseline_bytes": baseline, "peak_bytes": _peak_bytes(), "value": float(value)}


def measure(implementation: str, size: tuple[int, int, int], calls: int, dtype: str = "float32") -> dict:
  """Run one implementation in a fresh subprocess; its record, or ``{"error": ...}``."""
  command = [sys.executable, "-m", "benchmarks.peak_memory", "--worker", implementation, "--calls", str(calls)]
  command += ["--size", *map(str, size), "--dtype", dtype]
  done = subprocess.run(command, capture_output=True, text=True)
  if done.returncode != 0:
    return {"error": (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]}
  return json.loads(done.stdout.strip().splitlines()[-1])


def _mib(n: float) -> str:
  return f"{n / 2**20:9.0f}"


def table(records: dict[str, dict]) -> str:
  lines = [
    f"{'implementation':<14} {'peak MiB':>9} {'above baseline MiB':>19} {'peak / naive':>13} {'above / naive':>14}"
  ]
  naive = records.get("naive", {})
  for name, r in records.items():
    if "error" in r:
      lines.append(f"{name:<14} error: {r['error']}")
      continue
    above = r["peak_bytes"] - r["baseline_bytes"]
    ratios = ["—", "—"]
    if "peak_bytes" in naive:
      ratios = [
        f"{r['peak_bytes'] / naive['peak_bytes']:.3f}",
        f"{above / max(naive['peak_bytes'] - naive['baseline_bytes'], 1):.3f}",
      ]
    lines.append(f"{name:<14} {_mib(r['peak_bytes'])} {_mib(above):>19} {ratios[0]:>13} {ratios[1]:>14}")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.peak_memory", description=__doc__.splitlines()[0])
  parser.add_argument("--size", nargs=3, type=int, default=(8192, 1024, 32768), metavar=("N", "D", "V"))
  parser.add_argument("--calls", type=int, default=2, help="value_and_grad calls per process (default 2)")
  parser.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS)
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  parser.add_argument("--out", help="also write the records as JSON")
  parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  size = tuple(args.size)
  if args.worker:
    worker = _torch_worker if args.worker.startswith("torch") else _jax_worker
    print(json.dumps(worker(args.worker, *size, args.calls, args.dtype)))
    return 0
  records = {}
  for name in args.only:
    records[name] = measure(name, size, args.calls, args.dtype)
    print(f"{name}: {records[name]}", file=sys.stderr, flush=True)
  print(f"value_and_grad, {args.dtype}, N, D, V = {size}, {args.calls} calls per process")
  print(table(records))
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"size": size, "calls": args.calls, "records": records}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
