"""Public paths for exported names, and exports loaded on first access.

Every class and function a public package re-exports reports that package as its
``__module__`` (``pyworkflow.FatalError``, not ``pyworkflow._exceptions.FatalError``), so what
is persisted (a recorded failure's type) or printed never names a private module, and
private modules can move without changing what logs say. (trio and anyio do the same.)

A public package may also export names that most programs never touch (the file and Kafka
backends, schedules, the local scheduler) without importing their modules up front: it
lists them in a :class:`LazyExports` and forwards its module ``__getattr__`` and
``__dir__`` to it (PEP 562). The first access imports the defining module, publishes the
object like an eager export and stores it in the package, so later accesses are plain
attribute reads. Type checkers see the same names through ``if TYPE_CHECKING:`` imports.
Until that first access, code that reaches such an object through its private module sees
the private ``__module__``: so a class whose module path is persisted (an exception, whose
recorded failures name it) is always an eager export.
"""

import importlib
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["LazyExports", "publish"]


def publish(namespace: Mapping[str, object], names: Iterable[str]) -> None:
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


class LazyExports:
    """The names a public package imports on first access, and where each is defined.

    A name that maps to its own submodule (``{"actors": ".actors"}``) is that subpackage,
    imported on first access.

    ``extras`` maps a name to the optional dependency (a top-level module) and the extra
    that installs it: when that dependency is missing, the access raises an ``ImportError``
    that says what to install, instead of a ``ModuleNotFoundError`` deep in the import.
    A private package (``pyworkflow._execution``) may defer a costly module the same way;
    its names are not published (they keep the module that defines them).
    """

    __slots__ = ("_extras", "_namespace", "_where")

    def __init__(
        self,
        namespace: MutableMapping[str, Any],
        where: Mapping[str, str],
        extras: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self._namespace = namespace
        self._where = dict(where)
        self._extras = dict(extras or {})

    def load(self, name: str) -> Any:
        """The object exported as ``name``, imported and published now if it wasn't yet."""
        package = str(self._namespace["__name__"])
        module_name = self._where.get(name)
        if module_name is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg, name=name)
        try:
            module = importlib.import_module(module_name, package)
        except ModuleNotFoundError as exc:
            dependency, extra = self._extras.get(name, ("", ""))
            if not dependency or exc.name is None or exc.name.partition(".")[0] != dependency:
                raise
            msg = f"{name} needs {dependency}: pip install 'pyworkflow[{extra}]'"
            raise ImportError(msg, name=name) from exc
        found = module if module_name == f".{name}" else getattr(module, name)
        if "._" not in package:
            publish({"__name__": package, name: found}, [name])
        self._namespace[name] = found
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def dir(self) -> list[str]:
        """The package's names, loaded or not (its ``__dir__``)."""
        return sorted({*self._namespace, *self._where})
