"""Per-flow metrics and scores, as pure functions over numpy arrays.

Nothing here opens a file: callers read logs with the documented readers
(:mod:`endpoints.tcp.logs`, :mod:`endpoints.rtc.logs`) and pass the arrays
in, so the metrics do not depend on how logs are stored. All times are
CLOCK_MONOTONIC nanoseconds of one machine, so one-way delay is exact.

``series`` rates in bins, ``delay`` percentiles, ``loss`` from sequence
numbers, ``frames`` frame delay and freezes, ``fairness`` Jain's index,
``opennetlab`` the OpenNetLab challenge network score, ``objectives`` the
capacity-normalised score and the step rewards built from the same terms, ``summary`` the
per-flow dict that goes into results.json.
"""
