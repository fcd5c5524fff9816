"""One module per loss family, each exposing ``CASES`` (see :mod:`benchmarks.case`)."""
