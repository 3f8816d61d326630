"""The bottom layer that ``netlab``, ``shaping`` and ``endpoints`` all import.

It holds what the three packages need once and must agree on: the unit grammar
(:mod:`labcore.units`), the error base (:mod:`labcore.errors`), atomic JSON
writes (:mod:`labcore.jsonfile`), network-namespace entry
(:mod:`labcore.netns`), the real-time priority ladder
(:mod:`labcore.priority`), the run logs' size cap (:mod:`labcore.logcap`) and
the run's start instant as waiting processes receive it (:mod:`labcore.startgate`).
It imports nothing from the three packages (``tests/test_import_graph.py``
keeps it that way), so each of them can still be used as a library on its own.
"""
