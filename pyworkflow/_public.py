"""Public paths for exported names.

Every class and function a public package re-exports reports that package as its
``__module__`` (``pyworkflow.FatalError``, not ``pyworkflow._exceptions.FatalError``), so what
is persisted (a recorded failure's type) or printed never names a private module, and
private modules can move without changing what logs say. (trio and anyio do the same.)
"""

from collections.abc import Mapping

__all__ = ["publish"]


def publish(namespace: Mapping[str, object], names: list[str]) -> None:
    """Make each of ``names`` in a public package's ``namespace`` report that package.

    Only objects defined in this library's private modules are touched; msgspec Structs
    among them must not use string annotations (msgspec resolves those in ``__module__``).
    """
    public = str(namespace["__name__"])
    for name in names:
        obj = namespace[name]
        owner = getattr(obj, "__module__", None)
        if isinstance(owner, str) and owner.startswith("pyworkflow.") and "._" in owner:
            obj.__module__ = public
