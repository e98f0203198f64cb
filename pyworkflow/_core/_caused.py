"""``raise error from cause``, spelled so that compiled modules keep the cause.

The modules that a wheel compiles with mypyc (``setup.py``'s ``COMPILED``) drop the ``from``
clause of a ``raise``: the error reaches its handler with no ``__cause__``, and the engine
reads causes (an ``OwnerStopped`` carries the storage error that stopped the run). Those
modules raise ``caused(error, cause)`` instead; ``tests/test_compiled.py`` checks that
they have no ``raise ... from``.
"""

from typing import TypeVar

__all__ = ["caused"]

E = TypeVar("E", bound=BaseException)


def caused(error: E, cause: BaseException | None) -> E:
    """``error`` with ``cause`` as its ``__cause__`` (None: no cause, the context hidden),
    as ``raise error from cause`` leaves it."""
    error.__cause__ = cause
    return error
