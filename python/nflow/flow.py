"""Flows: build from a spec, fit, evaluate, sample, save.  Direction
convention as in TensorFlow Probability: a flow's forward maps base space to
data space (sampling), its inverse maps data to base space (density)."""

import ctypes
import math
import os
import tempfile

import numpy as np

from . import errors
from ._lib import (LOG_DENSITY_FN, PROGRESS_FN, SPLITS, Owned, Rng, TrainOpts, TrainReport, c_float_p, check, f32, lib,
                   ptr)


class History(dict):
    """What a fit returns: per-epoch (or per-log-interval) losses and the
    report's fields (steps, epochs, best_epoch, restored, seconds, ...)."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def _history(rep):
    n = rep.n_history
    h = History(
        train=np.array([rep.train_history[i] for i in range(n)], dtype=np.float64),
        val=np.array([rep.val_history[i] for i in range(n)], dtype=np.float64),
        steps=rep.steps,
        epochs=rep.epochs,
        train_loss=rep.train_loss,
        val_loss=rep.val_loss,
        best_val_loss=rep.best_val_loss,
        best_epoch=rep.best_epoch,
        stopped_early=bool(rep.stopped_early),
        restored=bool(rep.restored),
        seconds=rep.seconds,
    )
    lib.nf_train_report_free(ctypes.byref(rep))
    return h


class _Progress:
    """The C callback around a Python one; Ctrl-C stops training cleanly
    between steps (the KeyboardInterrupt is raised when fit returns)."""

    def __init__(self, fn):
        self.fn, self.exc = fn, None

        def cb(user, p):
            try:
                q = p.contents
                if self.fn is not None and self.fn(q.step, q.train_loss, q.val_loss) is False:
                    return 1
                return 0
            except BaseException as e:  # KeyboardInterrupt included: stop, re-raise later
                self.exc = e
                return 1

        self.c = PROGRESS_FN(cb)


def _opts(batch, lr, clip, threads, seed, callback, split="auto", **extra):
    o = lib.nf_train_defaults()
    o.batch = int(batch)
    o.lr = float(lr)
    o.clip_norm = float(clip or 0)
    o.threads = int(threads)
    if split not in SPLITS:
        raise errors.ArgumentError(f"split must be 'rows', 'columns' or 'auto', got {split!r}")
    o.split = SPLITS[split]
    o.seed = int(seed) & (2**64 - 1)
    prog = _Progress(callback)
    o.callback = prog.c
    for k, v in extra.items():
        setattr(o, k, v)
    return o, prog


class Flow(Owned):
    """A normalizing flow built from a spec (docs/spec.md), e.g.
    ``Flow("realnvp(layers=6, hidden=[256,256])", 2)``.

    >>> f = Flow("maf(hidden=[8])", 2, seed=1)
    >>> f.log_prob([[0.0, 0.0]]).shape
    (1,)
    """

    _free = lib.nf_flow_free

    def __init__(self, spec, dim, seed=0, context_dim=None, _handle=None):
        self._h = ctypes.c_void_p()
        if _handle is not None:
            self._h = _handle
        else:
            check(lib.nf_flow_from_spec(spec.encode(), int(dim), int(seed) & (2**64 - 1), ctypes.byref(self._h)))
        if context_dim is not None and context_dim != self.context_dim:
            raise errors.ArgumentError(
                "the spec makes a flow with a context of %d values, not %d (context=K in the spec)"
                % (self.context_dim, context_dim)
            )
        self._rng = Rng(seed + 0x5A4D9 if isinstance(seed, int) else 1)
        self._threads = 1

    @property
    def dim(self):
        return lib.nf_flow_dim(self._h)

    @property
    def context_dim(self):
        return lib.nf_flow_context_dim(self._h)

    @property
    def spec(self):
        s = lib.nf_flow_spec(self._h)
        return s.decode() if s else None

    @property
    def parameters(self):
        """The flat parameter buffer as a float32 array (a view: writes go to the flow)."""
        n = lib.nf_flow_param_count(self._h)
        p = lib.nf_flow_params(self._h)
        return np.ctypeslib.as_array(p, shape=(n,)) if n else np.zeros(0, np.float32)

    def __repr__(self):
        return "Flow(%r, dim=%d, parameters=%d)" % (self.spec, self.dim, len(self.parameters))

    @property
    def device(self):
        """Where the flow computes: "cpu" or the GPU's name ("cuda:0")."""
        return lib.nf_flow_device(self._h).decode()

    def to(self, device):
        """Computes on `device` from now on ("cpu", "cuda" or "cuda:K"; a GPU needs an
        nflow built with make CUDA=1, see nflow.cuda_available()); returns the flow.
        Raises UnsupportedError naming the first layer a GPU cannot run, or saying that
        CUDA or a GPU is missing.  Parameters stay readable and writable as numpy arrays;
        saved files are the same on every device."""
        check(lib.nf_flow_set_device(self._h, str(device).encode()))
        return self

    def _threads_for(self, threads):
        if threads != self._threads:
            check(lib.nf_flow_set_threads(self._h, int(threads)))
            self._threads = threads

    def _ctx(self, context, n):
        if not self.context_dim:
            if context is not None:
                raise errors.ArgumentError("this flow takes no context")
            return None
        if context is None:
            raise errors.ArgumentError("this flow is conditional: give context (n x %d)" % self.context_dim)
        c = np.asarray(context, dtype=np.float32)
        if c.ndim == 1 and c.shape[0] == self.context_dim:
            c = np.broadcast_to(c, (n, self.context_dim))
        return f32(c, self.context_dim, "context")

    def log_prob(self, x, context=None, threads=1):
        """log p(x) for each row of x (n x dim); -inf where p(x) = 0."""
        x = f32(x, self.dim)
        out = np.empty(len(x), np.float32)
        self._threads_for(threads)
        check(lib.nf_flow_log_prob_ctx(self._h, ptr(x), ptr(self._ctx(context, len(x))), len(x), ptr(out)))
        return out

    def to_base(self, x):
        """z = f^-1(x), the base-space image of each row (the density direction)."""
        x = f32(x, self.dim)
        z = np.empty_like(x)
        check(lib.nf_flow_to_base(self._h, ptr(x), len(x), ptr(z)))
        return z

    def sample(self, n, seed=None, context=None, threads=1):
        """n samples (n x dim); seed=None continues the flow's own generator."""
        rng = self._rng if seed is None else Rng(seed)
        out = np.empty((int(n), self.dim), np.float32)
        self._threads_for(threads)
        check(lib.nf_flow_sample_ctx(self._h, rng.h, ptr(self._ctx(context, n)), int(n), ptr(out)))
        return out

    def sample_and_log_prob(self, n, seed=None, context=None):
        """n samples and their log-densities, in one pass."""
        rng = self._rng if seed is None else Rng(seed)
        x = np.empty((int(n), self.dim), np.float32)
        lp = np.empty(int(n), np.float32)
        check(lib.nf_flow_sample_and_log_prob_ctx(self._h, rng.h, ptr(self._ctx(context, n)), int(n), ptr(x), ptr(lp)))
        return x, lp

    def fit(self, X, *, epochs=None, steps=None, batch=100, lr=1e-3, val_split=0.0, patience=None, standardize=False,
            clip=None, threads=1, split="auto", callback=None, seed=0, dequantize=False):
        """Maximum likelihood on the rows of X ([x | context] for a conditional
        flow): `epochs` passes, or whole epochs covering `steps` steps.
        callback(step, train_loss, val_loss) after every epoch; returning
        False stops.  `threads` share each step by `split`: "rows" (slices
        of the batch), "columns" (each product of the whole batch) or "auto"
        (columns below 32 rows a thread).  Returns a History; Ctrl-C stops
        between steps and raises KeyboardInterrupt with the flow usable."""
        if epochs and steps:
            raise errors.ArgumentError("give epochs or steps, not both")
        X = f32(X, self.dim + self.context_dim, "X")
        o, prog = _opts(batch, lr, clip, threads, seed, callback, split,
                        epochs=int(epochs or (0 if steps else 100)), steps=int(steps or 1000),
                        val_split=float(val_split), patience=int(patience or 0), standardize=int(bool(standardize)),
                        dequantize=int(bool(dequantize)))
        rep = TrainReport()
        status = lib.nf_flow_fit(self._h, ptr(X), len(X), ctypes.byref(o), ctypes.byref(rep))
        if prog.exc is not None:
            lib.nf_train_report_free(ctypes.byref(rep))
            raise prog.exc
        check(status)
        return _history(rep)

    def save(self, path):
        """Writes a model file (safetensors; readable by nflow_load and the CLI)."""
        check(lib.nf_flow_save(self._h, os.fsencode(path), None))

    def to_bytes(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.nflow")
            self.save(p)
            with open(p, "rb") as fh:
                return fh.read()

    def __reduce__(self):
        return (_from_bytes, (self.to_bytes(),))


def load(path):
    """A flow from a model file."""
    h = ctypes.c_void_p()
    check(lib.nf_flow_load(os.fsencode(path), ctypes.byref(h)))
    return Flow(None, 0, _handle=h)


def _from_bytes(data):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.nflow")
        with open(p, "wb") as fh:
            fh.write(data)
        return load(p)


def fit_density(target, spec, dim=2, *, steps=10000, batch=256, lr=1e-3, seed=0, anneal=0, clip=None, threads=1,
                split="auto", callback=None):
    """Reverse-KL fit of a flow to an unnormalised log-density: a name
    ("u1".."u4", Rezende & Mohamed's energies) or a callable
    target(x) -> (log_p, grad) on an (n x dim) float32 array.  Returns
    (flow, history); the history holds E_q[log q - log p~]."""
    flow = Flow(spec, dim, seed=seed)
    keep = None
    if isinstance(target, str):
        fn = LOG_DENSITY_FN()
        check(lib.nf_energy_target(target.encode(), ctypes.byref(fn)))
    elif callable(target):
        failure = []

        def tf(user, x, n, d, lp, grad):
            try:
                xa = np.ctypeslib.as_array(x, shape=(n, d)).copy()
                lpv, gv = target(xa)
                np.ctypeslib.as_array(lp, shape=(n,))[:] = np.asarray(lpv, np.float32).reshape(n)
                if grad:
                    np.ctypeslib.as_array(grad, shape=(n, d))[:] = np.asarray(gv, np.float32).reshape(n, d)
                return 0
            except BaseException as e:
                failure.append(e)
                return 1

        fn = LOG_DENSITY_FN(tf)
        keep = (fn, failure)
    else:
        raise errors.ArgumentError("target must be a name (u1..u4) or a callable")
    o, prog = _opts(batch, lr, clip, threads, seed + 1, callback, split, steps=int(steps),
                    log_every=max(1, int(steps) // 100), anneal_steps=int(anneal))
    rep = TrainReport()
    status = lib.nf_flow_fit_reverse_kl(flow._h, fn, None, ctypes.byref(o), ctypes.byref(rep))
    if prog.exc is not None:
        raise prog.exc
    if keep and keep[1]:
        raise keep[1][0]
    check(status)
    return flow, _history(rep)


def cuda_available():
    """True when this nflow was built with CUDA (make CUDA=1): Flow.to("cuda") can then
    run on a GPU where one is present."""
    return bool(lib.nf_cuda_available())
