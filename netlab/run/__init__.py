"""The life of one run, in the order it happens.

* start: :mod:`netlab.run.start` (agents, flow processes, trace replays on
  one clock) and :mod:`netlab.run.session` (the foreground ``up``/``run``);
* run: :mod:`netlab.run.flows` (each flow's processes on schedule) and
  :mod:`netlab.run.live` (the live view);
* collect: :mod:`netlab.run.collect` (``flows[]`` and time series),
  :mod:`netlab.run.fidelity`, :mod:`netlab.run.results` (``results.json``);
* report: :mod:`netlab.run.summary`, :mod:`netlab.run.plots`,
  :mod:`netlab.run.report`.

What differs between flow kinds lives in one module per kind under
:mod:`netlab.run.kinds`. This package imports nothing at load time: the
scenario layer reads the kinds' fields without pulling in the run.
"""
