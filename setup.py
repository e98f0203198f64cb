"""Build hook: a wheel of pyworkflow has its hot path compiled with mypyc.

The modules below (the engine's activation, the run's owner, the step and its context, the
replay fold, the codec) are compiled to C extensions beside their ``.py`` sources, which
stay in the wheel: Python imports the extension where it exists. Measured on the
benchmarks (``benchmarks/README.md``, "Compiled"), a step costs about half as much.

Pure Python instead:

* an editable install (``pip install -e .``): the tree is what runs, so an edit takes
  effect at once (an extension built in place would shadow the edited source);
* ``PYWORKFLOW_PURE_PYTHON=1`` at build time;
* a build where mypyc or a C compiler is missing (a warning says so; nothing else changes).

``just test-compiled`` runs the test suite on the compiled modules (CI does both).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "pyworkflow/_core/_codec.py",
    "pyworkflow/_core/_projection.py",
    "pyworkflow/_core/_replay.py",
    "pyworkflow/_execution/_context.py",
    "pyworkflow/_execution/_drafts.py",
    "pyworkflow/_execution/_engine.py",
    "pyworkflow/_execution/_owner.py",
    "pyworkflow/_execution/_state_cache.py",
    "pyworkflow/_execution/_step.py",
    "pyworkflow/_execution/_tree.py",
    "pyworkflow/storage/_held.py",
]


class _OptionalBuildExt(build_ext):
    """Builds the compiled modules, or leaves the wheel pure if the C compiler fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: stay pure
            for ext in self.extensions:  # a shim without its shared library would not import
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.get_ext_fullpath(ext.name))
            msg = f"pyworkflow: compiling with mypyc failed ({exc}); building pure Python"
            warnings.warn(msg, stacklevel=1)


_BUILDS = {"bdist_wheel", "build", "build_ext", "install"}
"""The commands that build extensions (pip's metadata steps, ``egg_info`` and ``dist_info``,
need none: mypyc's type check and C generation would only cost them time)."""


def _extensions() -> list[object]:
    if os.environ.get("PYWORKFLOW_PURE_PYTHON") or "editable_wheel" in sys.argv:
        return []
    if _BUILDS.isdisjoint(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        warnings.warn("pyworkflow: mypyc is not installed; building pure Python", stacklevel=1)
        return []
    return mypycify(COMPILED, opt_level="3", group_name="pyworkflow")


setup(ext_modules=_extensions(), cmdclass={"build_ext": _OptionalBuildExt})
