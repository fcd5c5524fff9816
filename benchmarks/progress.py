"""A dependency-free progress bar on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
  """``step(label)`` before each unit of work; a redrawn bar on a terminal, one line per step otherwise."""

  def __init__(self, total: int, *, enabled: bool = True, width: int = 30, stream=None):
    self.total, self.done, self.width = total, 0, width
    self.stream = sys.stderr if stream is None else stream
    self.enabled = enabled
    self.tty = enabled and self.stream.isatty()
    self.start = time.perf_counter()

  def step(self, label: str) -> None:
    if not self.enabled:
      return
    filled = self.width * self.done // max(self.total, 1)
    elapsed = time.perf_counter() - self.start
    line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done + 1}/{self.total} {elapsed:4.0f}s {label}"
    if self.tty:
      self.stream.write("\r" + line[:119].ljust(119))
    else:
      self.stream.write(line + "\n")
    self.stream.flush()
    self.done += 1

  def close(self) -> None:
    if self.tty:
      self.stream.write("\n")
      self.stream.flush()
