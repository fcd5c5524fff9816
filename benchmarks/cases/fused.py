"""Benchmark cases of the fused losses (``jaxloss/fused.py``).

``linear_cross_entropy`` is compute-bound (three matrix products for
``value_and_grad``, in jaxloss's mean as in the naive path), so the case reports
GFLOP/s of the naive path's work. Its figures are
the temp-memory and time ratios against the naive path, which is the ``jnp``
peer here: the ``[tokens, vocab]`` logits, then :func:`jaxloss.cross_entropy`.
optax has no fused loss: its peer is the same naive path through
``softmax_cross_entropy_with_integer_labels``. The torch peer is
``torch.nn.functional.linear_cross_entropy`` with its chunked implementation
(``options=LinearCrossEntropyOptions()``; ``options=None`` is its naive path).
Peak process memory needs separate processes: ``python -m benchmarks.peak_memory``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, torch_functional

# Issue 6's acceptance shape: tokens, features, vocabulary.
ACCEPTANCE = (8192, 1024, 32768)
# GPT-2's head (D = 768, V = 50257) at a scaled-down token count: an LLM head's time that runs here.
GPT2_HEAD = (1024, 768, 50257)


def tokens(rng, size):
  """``hidden [N, D]``, ``weight [V, D]`` scaled to unit-variance logits, ``labels [N]``."""
  n, d, v = size
  hidden = rng.standard_normal((n, d), np.float32)
  weight = (rng.standard_normal((v, d), np.float32) / np.float32(np.sqrt(d))).astype(np.float32)
  return hidden, weight, rng.integers(0, v, n).astype(np.int32)


def naive(hidden, weight, labels):
  """The naive path: the logits, then ``jl.cross_entropy``."""
  return jl.cross_entropy(jnp.matmul(hidden, weight.T), labels)


def torch_chunked(hidden, weight, labels):
  """torch 2.13's chunked ``linear_cross_entropy`` (same ``[V, D]`` weight layout)."""
  import torch

  options = torch.nn.LinearCrossEntropyOptions()
  return torch_functional().linear_cross_entropy(hidden, weight, labels.long(), options=options)


def _flops(inputs, mode, diff):
  """The naive path's matrix products: one forward, two more for the gradients."""
  (n, d), v = inputs[0].shape, inputs[1].shape[0]
  return 2 * n * d * v * (1 if mode == "forward" else 3)


CASES = [
  Case(
    name="linear_cross_entropy",
    family="fused",
    loss=jl.linear_cross_entropy,
    make=tokens,
    sizes=(GPT2_HEAD, ACCEPTANCE),
    jnp=naive,
    optax=lambda h, w, y: jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(jnp.matmul(h, w.T), y)),
    torch=torch_chunked,
    quick_sizes=((512, 256, 4096),),  # torch chunked takes seconds per call beyond this
    dtypes=("float32",),
    smoke_size=(16, 8, 40),
    diff=(0, 1),
    flops=_flops,
  ),
]


# LLM heads (issue 14): compile-only XLA memory at 8192 tokens, `python -m benchmarks.cases.fused`. -----------------
# Published context (other hardware, cite, do not compare): Cut Cross-Entropy (Wijmans et al., 2024, Table 1, A100)
# reports for Gemma-2-2B's head 1.1 MB for the loss and 1164 MB for loss + gradient, against 28 GB for the baseline.
LLM_HEADS = {"gpt2": (8192, 768, 50257), "llama3-8b": (8192, 4096, 128256), "gemma2-2b": (8192, 2304, 256000)}


def compile_only_memory(heads=LLM_HEADS, dtypes=("bfloat16", "float32")) -> list[dict]:
  """XLA temp and output bytes of ``jit(value_and_grad(f, argnums=(0, 1)))``, compiled but never run."""
  import jax

  records = []
  for name, (n, d, v) in heads.items():
    for dtype in dtypes:
      shapes = (
        jax.ShapeDtypeStruct((n, d), dtype),
        jax.ShapeDtypeStruct((v, d), dtype),
        jax.ShapeDtypeStruct((n,), jnp.int32),
      )
      for impl, f in (("jaxloss", jl.linear_cross_entropy), ("naive", naive)):
        compiled = jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(*shapes).compile()
        m = compiled.memory_analysis()
        assert m is not None, "this backend reports no memory analysis"
        records.append(
          {"head": name, "dtype": dtype, "impl": impl, "temp_mib": m.temp_size_in_bytes / 2**20,
           "output_mib": m.output_size_in_bytes / 2**20}
        )  # fmt: skip
        print(records[-1], flush=True)
  return records


def main(argv=None) -> int:
  """``python -m benchmarks.cases.fused [--out FILE.json]``: the LLM heads' compile-only memory."""
  import argparse
  import json

  from benchmarks import machine

  parser = argparse.ArgumentParser(prog="python -m benchmarks.cases.fused", description=main.__doc__)
  parser.add_argument("--out", help="write the records, with the machine and versions, to this JSON file")
  args = parser.parse_args(argv)
  records = compile_only_memory()
  if args.out:
    import datetime

    import jax

    document = {
      "what": "XLA temp and output MiB of jit(value_and_grad(f, argnums=(0, 1))) at 8192 tokens, compiled, never run",
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "backend": jax.default_backend(),
      "versions": {"jax": jax.__version__, "jaxloss": jl.__version__},
      "context": "Cut Cross-Entropy (Wijmans et al., 2024, Table 1, A100): Gemma-2-2B's head 1.1 MB for the loss,"
      " 1164 MB for loss + gradient, 28 GB for the baseline (other hardware: context, not a comparison)",
      "load": machine.load(),
      "records": records,
    }
    with open(args.out, "w") as f:
      json.dump(document, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
