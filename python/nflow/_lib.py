"""ctypes over libnflow.so: finding the library, the C structs, error
checks and array conversion.  Only the public ABI of include/nflow.h is
used.  ctypes releases the GIL during every foreign call, so long calls
(fit, log_prob and sampling of large arrays) let other Python threads run."""

import ctypes
import ctypes.util
import os

import numpy as np

from . import errors

c_float_p = ctypes.POINTER(ctypes.c_float)
c_double_p = ctypes.POINTER(ctypes.c_double)


def _candidates():
    env = os.environ.get("NFLOW_LIB")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    for rel in ("../../build/libnflow.so", "../../../build/libnflow.so", "libnflow.so"):
        yield os.path.normpath(os.path.join(here, rel))
    found = ctypes.util.find_library("nflow")
    if found:
        yield found
    for prefix in ("/usr/local/lib", "/usr/lib"):
        yield os.path.join(prefix, "libnflow.so.0")


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:  # pragma: no cover - depends on the machine
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "nflow: cannot find libnflow.so; build it (make) or install it (make install), "
        "or set NFLOW_LIB to its path.  Tried: " + ", ".join(tried)
    )


lib = _load()

PROGRESS_FN = None  # set below, after the structs


class TrainProgress(ctypes.Structure):
    _fields_ = [
        ("step", ctypes.c_size_t),
        ("total_steps", ctypes.c_size_t),
        ("epoch", ctypes.c_size_t),
        ("epoch_end", ctypes.c_int),
        ("train_loss", ctypes.c_double),
        ("val_loss", ctypes.c_double),
    ]


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(TrainProgress))
REDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, c_float_p, ctypes.c_size_t, c_double_p)
LOG_DENSITY_FN = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, c_float_p, ctypes.c_size_t, ctypes.c_size_t, c_float_p, c_float_p
)


class TrainOpts(ctypes.Structure):
    """nf_train_opts, field for field."""

    _fields_ = [
        ("lr", ctypes.c_float),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("batch", ctypes.c_size_t),
        ("epochs", ctypes.c_size_t),
        ("steps", ctypes.c_size_t),
        ("val_split", ctypes.c_float),
        ("patience", ctypes.c_size_t),
        ("clip_norm", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("standardize", ctypes.c_int),
        ("log_every", ctypes.c_size_t),
        ("callback", PROGRESS_FN),
        ("user", ctypes.c_void_p),
        ("checkpoint_path", ctypes.c_char_p),
        ("checkpoint_every", ctypes.c_size_t),
        ("resume_path", ctypes.c_char_p),
        ("threads", ctypes.c_size_t),
        ("anneal_steps", ctypes.c_size_t),
        ("reduce", REDUCE_FN),
        ("reduce_user", ctypes.c_void_p),
        ("dequantize", ctypes.c_int),
        ("comm", ctypes.c_void_p),
        ("split", ctypes.c_int),
    ]

SPLITS = {"auto": 0, "rows": 1, "columns": 2}  # enum nf_split


class TrainReport(ctypes.Structure):
    _fields_ = [
        ("steps", ctypes.c_size_t),
        ("epochs", ctypes.c_size_t),
        ("train_loss", ctypes.c_double),
        ("val_loss", ctypes.c_double),
        ("best_val_loss", ctypes.c_double),
        ("best_epoch", ctypes.c_size_t),
        ("stopped_early", ctypes.c_int),
        ("restored", ctypes.c_int),
        ("seconds", ctypes.c_double),
        ("train_history", c_double_p),
        ("val_history", c_double_p),
        ("n_history", ctypes.c_size_t),
    ]


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


vp, sz, st, cs = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p
vpp = ctypes.POINTER(ctypes.c_void_p)
_sig("nf_last_error", cs)
_sig("nf_version", cs)
_sig("nf_rng_create", st, ctypes.c_uint64, vpp)
_sig("nf_rng_free", None, vp)
_sig("nf_flow_from_spec", st, cs, sz, ctypes.c_uint64, vpp)
_sig("nf_flow_free", None, vp)
_sig("nf_flow_dim", sz, vp)
_sig("nf_flow_context_dim", sz, vp)
_sig("nf_flow_param_count", sz, vp)
_sig("nf_flow_params", c_float_p, vp)
_sig("nf_flow_spec", cs, vp)
_sig("nf_flow_set_threads", st, vp, sz)
_sig("nf_flow_set_device", st, vp, cs)
_sig("nf_flow_device", cs, vp)
_sig("nf_cuda_available", ctypes.c_int)
_sig("nf_flow_log_prob_ctx", st, vp, c_float_p, c_float_p, sz, c_float_p)
_sig("nf_flow_sample_ctx", st, vp, vp, c_float_p, sz, c_float_p)
_sig("nf_flow_sample_and_log_prob_ctx", st, vp, vp, c_float_p, sz, c_float_p, c_float_p)
_sig("nf_flow_to_base", st, vp, c_float_p, sz, c_float_p)
_sig("nf_flow_save", st, vp, cs, cs)
_sig("nf_flow_load", st, cs, vpp)
_sig("nf_train_defaults", TrainOpts)
_sig("nf_train_report_free", None, ctypes.POINTER(TrainReport))
_sig("nf_flow_fit", st, vp, c_float_p, sz, ctypes.POINTER(TrainOpts), ctypes.POINTER(TrainReport))
_sig("nf_flow_fit_reverse_kl", st, vp, LOG_DENSITY_FN, vp, ctypes.POINTER(TrainOpts), ctypes.POINTER(TrainReport))
_sig("nf_energy_target", st, cs, ctypes.POINTER(LOG_DENSITY_FN))
_sig("nf_bijector_from_spec", st, cs, sz, vp, vpp)
_sig("nf_bijector_free", None, vp)
_sig("nf_bijector_dim", sz, vp)
for _n in ("nf_bijector_forward", "nf_bijector_inverse"):
    _sig(_n, st, vp, c_float_p, sz, c_float_p, c_float_p)
for _n in ("nf_bijector_forward_log_det_jacobian", "nf_bijector_inverse_log_det_jacobian"):
    _sig(_n, st, vp, c_float_p, sz, c_float_p)
_sig("nf_dist_from_spec", st, cs, vp, vpp)
_sig("nf_dist_free", None, vp)
_sig("nf_dist_dim", sz, vp)
for _n in ("nf_dist_log_prob", "nf_dist_prob", "nf_dist_cdf"):
    _sig(_n, st, vp, c_float_p, sz, c_float_p)
_sig("nf_dist_sample", st, vp, vp, sz, c_float_p)
_sig("nf_data_generate", st, cs, vp, sz, ctypes.c_float, c_float_p, ctypes.POINTER(ctypes.c_int))
_sig("nf_data_name", cs, sz)


def check(status):
    """Raises the exception of a failing status, with the library's message."""
    if status:
        raise errors.from_status(status, lib.nf_last_error().decode("utf-8", "replace"))


def f32(x, cols=None, name="x"):
    """x as a C-contiguous float32 2-D array (no copy when it already is one)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.ndim == 1 and cols is not None:
        a = a.reshape(-1, cols) if cols != 1 else a.reshape(-1, 1)
    if a.ndim != 2:
        raise errors.ShapeError("%s must be 2-D (rows x columns), got shape %s" % (name, a.shape))
    if cols is not None and a.shape[1] != cols:
        raise errors.ShapeError("%s has %d columns, expected %d" % (name, a.shape[1], cols))
    return a


def ptr(a):
    return a.ctypes.data_as(c_float_p) if a is not None else None


class Owned:
    """A C object held in self._h and freed with the Python one by the
    class's `_free` (a library function taking the handle)."""

    _free = None

    def __del__(self):
        h = getattr(self, "_h", None)
        if h:
            type(self)._free(h)
            self._h = None


class Rng(Owned):
    """An nf_rng, freed with the object."""

    _free = lib.nf_rng_free

    def __init__(self, seed):
        self._h = ctypes.c_void_p()
        check(lib.nf_rng_create(int(seed) & (2**64 - 1), ctypes.byref(self._h)))

    @property
    def h(self):
        return self._h
