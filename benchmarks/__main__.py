"""``python -m benchmarks [options]`` runs the cases; ``python -m benchmarks report FILE.json ...`` renders them."""

import sys


def main(argv: list[str]) -> int:
  if argv[:1] == ["report"]:
    from benchmarks import report

    return report.main(argv[1:])
  from benchmarks import run

  return run.main(argv)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
