"""What a result file records about the machine, the software and the backends."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import jax

PLATFORMS = ("cpu", "gpu", "tpu")


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.split(":")[0].strip() in ("model name", "Model", "cpu model"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def load() -> list[float]:
  """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return []


def version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def torch_module():
  """``(torch, None)``, or ``(None, reason)`` when torch cannot be imported."""
  try:
    import torch
  except Exception as e:  # an optional peer: any import failure means "missing"
    return None, f"torch not importable ({type(e).__name__}: {e})"
  return torch, None


def devices(only: str | None = None) -> list[jax.Device]:
  """The first device of every backend JAX sees (``cpu``, and ``gpu``/``tpu`` when present)."""
  out = []
  for name in PLATFORMS if only is None else (only,):
    try:
      out.append(jax.devices(name)[0])
    except RuntimeError:  # backend not present
      continue
  return out


def torch_device(device: jax.Device) -> tuple[str | None, str | None]:
  """The torch device matching a JAX device, ``(name, None)`` or ``(None, reason)``."""
  torch, reason = torch_module()
  if torch is None:
    return None, reason
  if device.platform == "cpu":
    return "cpu", None
  if device.platform == "gpu" and torch.cuda.is_available():
    return "cuda", None
  return None, f"torch has no {device.platform} device here"


def describe(device: jax.Device) -> dict[str, Any]:
  """The backend section of a result file (the probe is added by the runner)."""
  torch_name, torch_reason = torch_device(device)
  return {
    "platform": device.platform,
    "device_kind": device.device_kind,
    "device": str(device),
    "device_count": len(jax.devices(device.platform)),
    "torch_device": torch_name,
    "torch_missing_reason": torch_reason,
  }


def gpu_model() -> str | None:
  """The GPU model JAX (or else torch) reports, None without a GPU."""
  gpus = devices("gpu")
  if gpus:
    return gpus[0].device_kind
  torch, _ = torch_module()
  if torch is not None and torch.cuda.is_available():
    return torch.cuda.get_device_name(0)
  return None


def environment() -> dict[str, Any]:
  """Software versions and the host: the ``versions`` and ``machine`` sections."""
  torch, _ = torch_module()
  versions = {
    "python": platform.python_version(),
    **{name: version(name) for name in ("jaxloss", "jax", "jaxlib", "optax", "numpy", "torch")},
  }
  machine = {
    "cpu_model": cpu_model(),
    "cpu_count": os.cpu_count(),
    "gpu_model": gpu_model(),
    "os": platform.platform(),
    "torch_threads": torch.get_num_threads() if torch is not None else None,
  }
  return {"versions": versions, "machine": machine}
