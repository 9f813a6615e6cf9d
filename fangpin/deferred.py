"""Modules imported on first use: a library's import that pulls in modules it only needs for features fangpin does
not use.

great-expectations imports all of its core expectations when it is imported, and one of them (the KL divergence,
which fangpin's suites do not use) imports scipy.stats and altair: ~0.8 of the ~2.3 CPU-s of its import, paid in
every county run (bench/FINDINGS.md, session 16). Left in `sys.modules` as stand-ins, they are imported the moment
anything reads one of their attributes, so any code that does use them works as before.

Why not `importlib.util.LazyLoader`: in Python 3.11 the import system reads the module's `__spec__` when an import
statement finds it in `sys.modules`, and a lazy module loads on that first attribute read; the stand-in here has its
`__spec__` from the start and loads on the first attribute it does not have.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

_LOADING = threading.RLock()  # two threads reading a stand-in's attribute at once import its module once
_MODULE = "_fangpin_imported_module"  # where a stand-in keeps the module it stands for, once imported


class _ImportedOnUse(types.ModuleType):
    """Stands for a module not yet imported; the first attribute read that it does not have imports the module,
    which then replaces it in `sys.modules`, and copies the module's attributes (holders of the stand-in, such as
    `from scipy import stats` done earlier, see them from then on)."""

    def __getattr__(self, name: str):  # only called for attributes not in the stand-in's own __dict__
        with _LOADING:
            module = self.__dict__.get(_MODULE)
            if module is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                module = importlib.import_module(self.__name__)
                self.__dict__.update(module.__dict__)
                self.__dict__[_MODULE] = module
        return getattr(module, name)


def import_on_use(names: tuple[str, ...]) -> list[str]:
    """Leave each of these modules unimported until first used; returns the ones deferred (a module already
    imported, or not installed, is left alone)."""
    deferred = []
    with _LOADING:
        for name in names:
            if name in sys.modules:
                continue
            try:
                spec = importlib.util.find_spec(name)  # imports the parent package (scipy, not scipy.stats)
            except ModuleNotFoundError:  # the parent package is not installed
                spec = None
            if spec is None:
                continue
            stand_in = _ImportedOnUse(name)
            stand_in.__spec__ = spec
            sys.modules[name] = stand_in
            deferred.append(name)
    return deferred
