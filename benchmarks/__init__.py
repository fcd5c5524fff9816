"""jaxloss's benchmark harness: ``python -m benchmarks`` (see benchmarks/README.md).

A loss family adds its cases in ``benchmarks/cases/<family>.py`` as a list
``CASES`` of :class:`benchmarks.case.Case`.
"""
