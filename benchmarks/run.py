"""``python -m benchmarks``: run the cases on every backend, print a table, write JSON."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import machine, timing
from benchmarks.case import IMPLEMENTATIONS, PEERS, Case, Variant, all_cases, seed_for, size_label, variants
from benchmarks.progress import Progress

SCHEMA_VERSION = 1
# Probe sizes, in float32 elements: well beyond any cache for the real runs.
PROBE_ELEMENTS = {"full": 10**8, "quick": 25 * 10**6, "smoke": 10**5}


def _error(e: BaseException) -> dict[str, Any]:
  return {"status": "error", "reason": f"{type(e).__name__}: {e}"[:500]}


def _missing(reason: str) -> dict[str, Any]:
  return {"status": "missing", "reason": reason}


def cast_inputs(inputs: Sequence[np.ndarray], dtype: str) -> list[np.ndarray]:
  """Floating inputs in ``dtype`` (integer inputs such as labels unchanged)."""
  target = jnp.dtype(dtype)
  return [x.astype(target) if np.issubdtype(x.dtype, np.floating) else x for x in inputs]


def to_torch(torch, x: np.ndarray, device: str):
  """A NumPy array (bfloat16 included) as a tensor with the same bits on ``device``."""
  if x.dtype == jnp.bfloat16:
    return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16).to(device)
  return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def _scalar(out) -> float | None:
  """A loss value for the JSON (which has no NaN or inf): None when not finite."""
  value = float(np.asarray(out, np.float64))
  return value if np.isfinite(value) else None


def prepare_jax(name: str, fn, args: Sequence[jax.Array], mode: str, diff: Sequence[int]):
  """Compile ``fn`` (or its value_and_grad) for ``args``: a :class:`timing.Timed` and what compiling cost."""
  f = fn if mode == "forward" else jax.value_and_grad(fn, argnums=tuple(diff))
  start = time.perf_counter()
  lowered = jax.jit(f).lower(*args)
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  compiled_at = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  memory = compiled.memory_analysis()
  info = {
    "trace_s": lowered_at - start,
    "compile_s": compiled_at - lowered_at,
    "temp_bytes": None if memory is None else int(memory.temp_size_in_bytes),
    "value": _scalar(out if mode == "forward" else out[0]),
  }
  return timing.Timed(name, lambda: compiled(*args), jax.block_until_ready), info


def prepare_torch(torch, fn, tensors: list, mode: str, diff: Sequence[int], device: str):
  """The torch peer as a :class:`timing.Timed`: the loss, and ``autograd.grad`` for value_and_grad."""
  tensors = list(tensors)
  if mode == "forward":
    call = lambda: fn(*tensors)  # the inputs do not require grad: no graph is built
  else:
    for i in diff:
      tensors[i] = tensors[i].detach().requires_grad_(True)
    wrt = [tensors[i] for i in diff]

    def call():
      loss = fn(*tensors)
      return loss, torch.autograd.grad(loss, wrt)

  sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else (lambda out: None)
  out = call()
  sync(out)
  value = out if mode == "forward" else out[0]
  info = {"trace_s": None, "compile_s": None, "temp_bytes": None, "value": _scalar(value.detach().float().cpu())}
  return timing.Timed("torch", call, sync), info


def measure_variant(
  variant: Variant,
  inputs: Sequence[np.ndarray],
  device: jax.Device,
  torch_state: tuple[Any, str | None, str | None],
  probe_gbps: float | None,
  budget: timing.Budget,
) -> dict[str, Any]:
  """Every implementation of one variant, timed interleaved: one result record."""
  case = variant.case
  torch, torch_device, torch_reason = torch_state
  args = [jax.device_put(x, device) for x in inputs]
  records: dict[str, dict[str, Any]] = {}
  ready: list[timing.Timed] = []
  for name in IMPLEMENTATIONS:
    fn = case.peer(name)
    if fn is None:
      records[name] = _missing(f"{name} has no equivalent of {case.name}")
      continue
    if name == "torch" and torch_device is None:
      records[name] = _missing(torch_reason or "torch unavailable")
      continue
    try:
      if name == "torch":
        tensors = [to_torch(torch, x, torch_device) for x in inputs]
        timed, info = prepare_torch(torch, fn, tensors, variant.mode, case.diff, torch_device)
      else:
        timed, info = prepare_jax(name, fn, args, variant.mode, case.diff)
    except Exception as e:  # a failing peer is reported, never fatal; a failing jaxloss fails the run at the end
      records[name] = _error(e)
      continue
    records[name] = {"status": "ok", **info}
    ready.append(timed)

  samples = timing.interleaved(ready, budget) if ready else {}
  bytes_moved = int(case.bytes_moved(inputs, variant.mode, case.diff))
  flops = None if case.flops is None else int(case.flops(inputs, variant.mode, case.diff))
  for name, seconds in samples.items():
    stats = timing.summary(seconds)
    achieved = timing.gbps(bytes_moved, stats["median_s"])
    records[name].update(stats)
    records[name]["gbps"] = achieved
    records[name]["bandwidth_fraction"] = timing.bandwidth_fraction(achieved, probe_gbps)
    records[name]["gflops"] = None if flops is None else flops / stats["median_s"] / 1e9
  ratios = {
    peer: timing.paired_ratio(samples["jaxloss"], samples[peer]) if "jaxloss" in samples and peer in samples else None
    for peer in PEERS
  }
  return {
    "id": variant.id,
    "backend": device.platform,
    "family": case.family,
    "case": case.name,
    "dtype": variant.dtype,
    "mode": variant.mode,
    "size": list(variant.size) if isinstance(variant.size, tuple) else variant.size,
    "size_label": size_label(variant.size),
    "elements": int(inputs[0].size),
    "bytes_moved": bytes_moved,
    "flops": flops,
    "load_1m": (machine.load() or [None])[0],
    "implementations": records,
    "ratios": ratios,
  }


def probe(device: jax.Device, elements: int, budget: timing.Budget) -> dict[str, Any]:
  """Streaming bandwidth of this device, measured like the cases: a read-only sum and a triad."""
  rng = np.random.default_rng(0)  # uniform, not normal: drawing 10**8 normals costs seconds
  x = jax.device_put(rng.random(elements, np.float32), device)
  y = jax.device_put(rng.random(elements, np.float32), device)
  kernels = {
    "read": (lambda a: jnp.sum(a), (x,), 4 * elements),
    "triad": (lambda a, b: 2.0 * a + b, (x, y), 12 * elements),
  }
  ready = []
  for name, (fn, args, _) in kernels.items():
    compiled = jax.jit(fn).lower(*args).compile()
    ready.append(timing.Timed(name, lambda c=compiled, a=args: c(*a), jax.block_until_ready))
  samples = timing.interleaved(ready, budget)
  results = []
  for name, (_, _, num_bytes) in kernels.items():
    stats = timing.summary(samples[name])
    results.append({"name": name, "elements": elements, "bytes": num_bytes, **stats})
    results[-1]["gbps"] = timing.gbps(num_bytes, stats["median_s"])
  return {"gbps": max(r["gbps"] for r in results), "kernels": results}


def select(cases: Sequence[Case], *, mode: str, pattern: str | None) -> list[Variant]:
  """The variants of a ``full``, ``quick`` or ``smoke`` run whose id matches ``pattern``."""
  if mode == "smoke":
    chosen = [Variant(c, c.smoke_size, c.dtypes[0], m) for c in cases for m in ("forward", "value_and_grad")]
  else:
    chosen = variants(cases, quick=mode == "quick")
  if pattern:
    regex = re.compile(pattern)
    chosen = [v for v in chosen if regex.search(v.id)]
  return chosen


def _inputs(variant: Variant, seed: int) -> list[np.ndarray]:
  return cast_inputs(variant.case.make(seed_for(seed, variant.case, variant.size), variant.size), variant.dtype)


def run(
  chosen: Sequence[Variant],
  *,
  mode: str,
  seed: int = 0,
  backend: str | None = None,
  torch_threads: int | None = None,
  min_rounds: int | None = None,
  progress: bool = True,
) -> dict[str, Any]:
  """Measure ``chosen`` on every backend: the result document (see ``schema.json``)."""
  budget = {"full": timing.FULL, "quick": timing.QUICK, "smoke": timing.SMOKE}[mode]
  if min_rounds:
    rounds = {"min_rounds": min_rounds, "min_rounds_long": min_rounds}
    budget = dataclasses.replace(budget, **rounds, max_rounds=max(budget.max_rounds, min_rounds))
  torch = machine.torch_module()[0]
  if torch is not None and torch_threads:
    torch.set_num_threads(torch_threads)
  document: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": sys.argv,
    "options": {"mode": mode, "seed": seed, "backend": backend, "budget": vars(budget).copy()},
    **machine.environment(),
    "load_start": machine.load(),
    "backends": [],
    "results": [],
    "complete": False,
  }
  devices = machine.devices(backend)
  bar = Progress(len(devices) * (len(chosen) + 1), enabled=progress)
  start = time.perf_counter()
  try:
    for device in devices:
      bar.step(f"{device.platform}: bandwidth probe")
      backend_record = machine.describe(device)
      backend_record["probe"] = probe(device, PROBE_ELEMENTS[mode], budget)
      document["backends"].append(backend_record)
      torch_state = (torch, backend_record["torch_device"], backend_record["torch_missing_reason"])
      inputs_key, inputs = None, None
      for variant in chosen:
        bar.step(f"{device.platform}: {variant.id}")
        key = (variant.case.name, variant.size, variant.dtype)
        if key != inputs_key:  # forward and value_and_grad share one input set
          inputs = None  # free the previous set first: at 10**8 elements it is GBs
          inputs_key, inputs = key, _inputs(variant, seed)
        probe_gbps = backend_record["probe"]["gbps"]
        document["results"].append(measure_variant(variant, inputs, device, torch_state, probe_gbps, budget))
    document["complete"] = True
  except KeyboardInterrupt:
    print("\ninterrupted: writing what was measured", file=sys.stderr)
  finally:
    bar.close()
  document["load_end"] = machine.load()
  document["wall_s"] = time.perf_counter() - start
  return document


def _ms(seconds: float | None) -> str:
  return "—" if seconds is None else f"{seconds * 1e3:.3g}"


def _ratio(ratio: float | None, record: dict[str, Any]) -> str:
  if ratio is not None:
    return f"{ratio:.2f}" + ("*" if ratio > timing.SLOWER else " ")
  return {"missing": "— ", "error": "err "}.get(record["status"], "— ")


FOOTER = f"""\
Columns (jaxloss's figures; one row per variant, id = family/case/dtype/mode/size):
  ms       median time per call, over interleaved rounds (jaxloss and its peers alternate)
  IQR      interquartile range of the rounds / the median: the noise of this figure
  compile  trace + XLA compile of the jitted function (value_and_grad included), ms
  GB/s     achieved bandwidth: the bytes a perfect kernel moves (each input read once, each gradient
           written once; benchmarks/case.py) / the median time
  %bw      GB/s as a fraction of the bandwidth probe above (same device, same run); over 100%: in cache
  temp MB  XLA's temporary buffers for the compiled program (memory_analysis), MiB
  /peer    jaxloss time / peer time, the median of per-round ratios: below 1 jaxloss is faster
  *        slower than that peer by more than {timing.SLOWER - 1:.0%} in this run
  —        the peer has no such loss (or no torch);  err: the peer failed (reason in --out FILE.json)
A * here is one run's figure at this mode's sizes and under this machine's load: the README's
headline table (bold = *) is the committed full run on a quiet machine at each case's largest size,
and benchmarks/results/README.md gives the reason for each case slower there. Small, fast calls
(under ~1 ms) and high load move ratios most: rerun with --filter and --min-rounds before concluding."""


def summary(document: dict[str, Any]) -> str:
  """How many variants jaxloss is ahead of, level with (within 5%) and behind each peer, per backend."""
  ahead, behind = 2 - timing.SLOWER, timing.SLOWER
  lines = [f"Summary, variants by jaxloss / peer: ahead (< {ahead:.2f}), level, behind (> {behind:.2f}, the * rows)"]
  for backend in document["backends"]:
    rows = [r for r in document["results"] if r["backend"] == backend["platform"]]
    for peer in PEERS:
      ratios = [r["ratios"][peer] for r in rows if r["ratios"][peer] is not None]
      if not ratios:
        lines.append(f"  {backend['platform']:<4} vs {peer:<6} no variant compared")
        continue
      n_ahead = sum(x < ahead for x in ratios)
      n_behind = sum(x > behind for x in ratios)
      cases = len({r["case"] for r in rows if r["ratios"][peer] is not None})
      lines.append(
        f"  {backend['platform']:<4} vs {peer:<6} {len(ratios):>3} variants ({cases:>2} cases):"
        f" ahead {n_ahead:>3}, level {len(ratios) - n_ahead - n_behind:>3}, behind {n_behind:>3}"
        f"  (median ratio {float(np.median(ratios)):.2f})"
      )
  return "\n".join(lines)


def table(document: dict[str, Any]) -> str:
  """The results as a fixed-width text table, one block per backend, the column key and a summary."""
  lines = []
  width = max([len("case"), *(len(r["id"]) for r in document["results"])])
  header = f"{'case':<{width}} {'ms':>8} {'IQR':>5} {'compile':>8} {'GB/s':>6} {'%bw':>5} {'temp MB':>8}" + "".join(
    f" {'/' + p:>7} " for p in PEERS
  )
  for backend in document["backends"]:
    probe_record = backend["probe"]
    kernels = ", ".join(f"{k['name']} {k['gbps']:.1f}" for k in probe_record["kernels"])
    device = f"{backend['platform']} ({backend['device_kind']})"
    lines.append(f"\n{device}: probe {probe_record['gbps']:.1f} GB/s ({kernels})")
    lines.append(header)
    for r in document["results"]:
      if r["backend"] != backend["platform"]:
        continue
      ours = r["implementations"]["jaxloss"]
      name = r["id"]
      if ours["status"] != "ok":
        lines.append(f"{name:<{width}} {ours['status']}: {ours['reason']}")
        continue
      iqr = (ours["q3_s"] - ours["q1_s"]) / ours["median_s"]
      fraction = ours["bandwidth_fraction"]
      temp = ours["temp_bytes"]
      compile_ms = (ours["trace_s"] + ours["compile_s"]) * 1e3
      lines.append(
        f"{name:<{width}} {_ms(ours['median_s']):>8} {iqr:>5.0%} {compile_ms:>8.0f}"
        f" {ours['gbps']:>6.1f} {'—' if fraction is None else f'{fraction:.0%}':>5}"
        f" {'—' if temp is None else f'{temp / 2**20:.1f}':>8}"
        + "".join(f" {_ratio(r['ratios'][p], r['implementations'][p]):>8}" for p in PEERS)
      )
  lines += ["", FOOTER, "", summary(document)]
  return "\n".join(line.rstrip() for line in lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks",
    description="Benchmark jaxloss against optax, plain jnp and PyTorch on every JAX backend."
    " `python -m benchmarks report FILE.json ...` renders result files.",
  )
  size = parser.add_mutually_exclusive_group()
  size.add_argument(
    "--quick",
    action="store_true",
    help="a representative subset of every family: value_and_grad, forward for each family's first case",
  )
  size.add_argument("--smoke", action="store_true", help="each case at its tiny smoke_size, 2 rounds (a check)")
  parser.add_argument("--filter", metavar="REGEX", help="only variants whose id (family/case/dtype/mode/size) matches")
  parser.add_argument("--out", metavar="FILE.json", help="write the results (schema: benchmarks/schema.json)")
  parser.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
  parser.add_argument("--backend", choices=machine.PLATFORMS, help="only this backend (default: every one present)")
  parser.add_argument(
    "--torch-threads",
    type=int,
    default=1,
    metavar="N",
    help="torch's intra-op threads (default 1, as the committed results; 0: torch's own choice); recorded in the JSON",
  )
  parser.add_argument("--min-rounds", type=int, metavar="N", help="at least N interleaved rounds per variant")
  parser.add_argument("--list", action="store_true", help="list the selected variant ids and exit")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  args = parse(argv)
  mode = "quick" if args.quick else "smoke" if args.smoke else "full"
  chosen = select(all_cases(), mode=mode, pattern=args.filter)
  if args.list:
    print("\n".join(v.id for v in chosen))
    return 0
  if not chosen:
    print(f"no variant matches --filter {args.filter!r} (see --list)", file=sys.stderr)
    return 2
  document = run(
    chosen,
    mode=mode,
    seed=args.seed,
    backend=args.backend,
    torch_threads=args.torch_threads,
    min_rounds=args.min_rounds,
    progress=not args.no_progress,
  )
  print(table(document))
  print(f"\n{len(document['results'])} variants in {document['wall_s']:.0f} s; load {document['load_end']}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(document, f, indent=1, allow_nan=False)
    print(f"wrote {args.out}")
  failed = [r["id"] for r in document["results"] if r["implementations"]["jaxloss"]["status"] != "ok"]
  if failed:
    print(f"jaxloss failed on {len(failed)} variants: {failed}", file=sys.stderr)
  return 1 if failed or not document["complete"] else 0
