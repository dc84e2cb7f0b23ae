"""Numpy pickles read without running their code: only arrays, dtypes and plain containers come out."""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

try:
    from numpy._core import multiarray as _multiarray  # numpy >= 2
except ImportError:
    from numpy.core import multiarray as _multiarray

# The globals numpy's own pickles of arrays, dtypes and scalars refer to. Numpy 2 writes numpy._core,
# numpy 1 wrote numpy.core: files from both are in circulation.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (module, "_reconstruct"): _multiarray._reconstruct
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    **{
        (module, "scalar"): _multiarray.scalar
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
}
_PLAIN_TYPES = (dict, list, tuple, str, int, float, bool, type(None))
_ONLY = "only numpy arrays, dtypes and plain containers (dict, list, tuple, str, int, float) are read"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self.where} refers to {module}.{name}, which a weights pickle must not: {_ONLY}. The file"
                " is not what it claims to be; fetch it again from its source"
            ) from None


def _check_plain(value: Any, where: str, key: str = "") -> None:
    """Raise if anything in `value` is other than plain containers and numeric numpy arrays or scalars."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, where, key)
            _check_plain(v, where, f"{key}/{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, where, f"{key}[{i}]")
    elif isinstance(value, np.ndarray | np.generic):
        # Object arrays hold arbitrary Python objects; weights are numbers.
        if value.dtype.hasobject:
            raise pickle.UnpicklingError(
                f"{where}: {key or 'the value'} is an array of Python objects; {_ONLY}"
            )
    elif not isinstance(value, _PLAIN_TYPES):
        raise pickle.UnpicklingError(f"{where}: {key or 'the value'} is a {type(value).__name__}; {_ONLY}")


def load(path: str | os.PathLike) -> Any:
    """The content of numpy pickle `path`; UnpicklingError naming any other class or function it refers to."""
    where = os.fspath(path)
    with open(path, "rb") as file:
        value = _NumpyOnlyUnpickler(file, where).load()
    _check_plain(value, where)
    return value
