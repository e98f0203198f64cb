"""Executing workflow code over a run's log: the run context, ``@workflow``/``@step``,
``sleep``, ``hook``, cancellation and ``shield``, the registry of names, the clocks, the
kept-state cache and the engine that drives one execution. Imports the core and the storage
port, never a backend.
"""
