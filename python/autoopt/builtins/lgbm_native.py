"""A LightGBM booster for prediction only, through LightGBM's own C library (ctypes), without
importing the ``lightgbm`` Python package.

Why: ``import lightgbm`` pulls in ``scipy.sparse``, ``pandas`` and ``pyarrow`` when they are
installed (about 87 MB resident). A trading engine that follows a LightGBM champion only needs
to load a text model and predict rows; the shared library shipped inside the ``lightgbm`` wheel
does exactly that, with the same code and therefore the same numbers. Training keeps using the
Python package (`autoopt.builtins.lgbm_trainer`).

The four calls used (``c_api.h``): ``LGBM_BoosterLoadModelFromString``,
``LGBM_BoosterGetFeatureNames``, ``LGBM_BoosterPredictForMat`` (float64, row-major, normal
prediction, every iteration: what ``Booster.predict`` does for a model loaded from text) and
``LGBM_BoosterFeatureImportance``; ``LGBM_BoosterFree`` on collection.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from autoopt.errors import ArtifactError, PluginError

_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()
_DTYPE_FLOAT64 = 1
_PREDICT_NORMAL = 0
_IMPORTANCE = {"split": 0, "gain": 1}


def _lib() -> ctypes.CDLL:
    """LightGBM's shared library from the installed wheel (found without importing it)."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is None:
            spec = importlib.util.find_spec("lightgbm")
            if spec is None or spec.origin is None:
                raise PluginError("the lgbm trainer needs LightGBM: pip install lightgbm")
            path = Path(spec.origin).parent / "lib" / "lib_lightgbm.so"
            if not path.is_file():
                raise PluginError(f"LightGBM's library is not at {path}: reinstall lightgbm")
            lib = ctypes.cdll.LoadLibrary(str(path))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _LIB = lib
        return _LIB


def _check(code: int, what: str) -> None:
    if code != 0:
        message = (_lib().LGBM_GetLastError() or b"").decode("utf-8", "replace")
        raise ArtifactError(f"LightGBM {what}: {message}")


class NativeBooster:
    """The slice of ``lightgbm.Booster`` a predictor uses, over the C library."""

    def __init__(self, model_text: str) -> None:
        lib = _lib()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(lib.LGBM_BoosterLoadModelFromString(
            ctypes.c_char_p(model_text.encode("utf-8")), ctypes.byref(iterations),
            ctypes.byref(self._handle)), "cannot load the model text")
        self._text = model_text
        self._names = self._feature_names()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value and _LIB is not None:
            _LIB.LGBM_BoosterFree(handle)

    def _feature_names(self) -> list[str]:
        lib = _lib()
        n = ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(n)), "feature count")
        size = 256
        while True:
            bufs = [ctypes.create_string_buffer(size) for _ in range(n.value)]
            ptrs = (ctypes.c_char_p * n.value)(*map(ctypes.addressof, bufs))
            got, needed = ctypes.c_int(0), ctypes.c_size_t(0)
            _check(lib.LGBM_BoosterGetFeatureNames(
                self._handle, ctypes.c_int(n.value), ctypes.byref(got), ctypes.c_size_t(size),
                ctypes.byref(needed), ptrs), "feature names")
            if needed.value <= size:
                return [b.value.decode("utf-8") for b in bufs[: got.value]]
            size = int(needed.value)

    def feature_name(self) -> list[str]:
        return list(self._names)

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        data = np.ascontiguousarray(X, dtype=np.float64)
        rows, cols = data.shape
        out = np.empty(rows, dtype=np.float64)
        out_len = ctypes.c_int64(0)
        _check(_lib().LGBM_BoosterPredictForMat(
            self._handle, data.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(rows), ctypes.c_int32(cols), ctypes.c_int(1),
            ctypes.c_int(_PREDICT_NORMAL), ctypes.c_int(0), ctypes.c_int(-1),
            ctypes.c_char_p(f"num_threads={int(num_threads)}".encode()), ctypes.byref(out_len),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))), "prediction")
        if out_len.value != rows:
            raise ArtifactError(f"LightGBM returned {out_len.value} predictions for {rows} rows "
                                "(a multi-class model where a binary one was expected?)")
        return out

    def model_to_string(self) -> str:
        return self._text

    def feature_importance(self, importance_type: str = "split") -> np.ndarray:
        out = np.zeros(len(self._names), dtype=np.float64)
        _check(_lib().LGBM_BoosterFeatureImportance(
            self._handle, ctypes.c_int(-1), ctypes.c_int(_IMPORTANCE[importance_type]),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))), "feature importance")
        return out


def load_booster(text: str) -> Any:
    """A prediction-only booster for a LightGBM text model."""
    return NativeBooster(text)


__all__ = ["NativeBooster", "load_booster"]
