"""The Python package: numbers equal the C library's and the CLI's bit for
bit, errors map to exceptions, long calls release the GIL, objects are
freed, flows pickle, Ctrl-C stops training cleanly."""

import os
import pickle
import resource
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import nflow

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.path.join(ROOT, os.environ.get("NFLOW_BUILD", "build"), "nflow")


@pytest.fixture(scope="module")
def moons():
    return nflow.datasets.moons(2000, noise=0.05, seed=3)[0]


def test_walkthrough_numbers():
    d = nflow.Distribution("normal(0, 1)")
    assert round(float(d.log_prob([2.01])[0]), 6) == -2.938988
    t = nflow.Distribution("transformed(normal(0,1), affine_scalar(shift=0, scale=2))")
    np.testing.assert_allclose(t.log_prob([0, 1, 2]), [-1.61209, -1.73709, -2.11209], atol=1e-5)
    np.testing.assert_allclose(t.cdf([0, 1, 2]), [0.5, 0.691462, 0.841345], atol=1e-6)
    b = nflow.Bijector("normal_cdf")
    assert abs(float(b.forward([[2.01]])[0, 0]) - 0.977784) < 1e-6


def test_fit_and_cli_agree_bit_for_bit(tmp_path, moons):
    f = nflow.Flow("maf(layers=2, hidden=[16,16])", 2, seed=1)
    h = f.fit(moons, epochs=10, lr=3e-3, val_split=0.2, standardize=True)
    assert len(h.train) == 10 and h.train[-1] < h.train[0]
    path = str(tmp_path / "m.nflow")
    f.save(path)
    pts = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    np.savetxt(tmp_path / "p.csv", pts, delimiter=",", fmt="%.9g")
    if os.path.exists(CLI):
        subprocess.run([CLI, "logprob", "--model", path, "--in", str(tmp_path / "p.csv"), "--out",
                        str(tmp_path / "lp.npy")], check=True)
        cli = np.load(tmp_path / "lp.npy")
        assert cli.shape == (50,)
        assert np.array_equal(cli, f.log_prob(pts)), "Python and the CLI give the same floats"
    g = nflow.load(path)
    assert np.array_equal(g.log_prob(pts), f.log_prob(pts))
    assert np.array_equal(g.parameters, f.parameters)


def test_threads_split(moons):
    """The split reaches the library: by columns a 4-thread fit repeats and follows one thread;
    rows sum the threads' gradients in another order; a bad split is an ArgumentError."""
    fits = {}
    for threads, split in ((1, "rows"), (4, "columns"), (4, "columns"), (4, "rows")):
        f = nflow.Flow("realnvp(layers=2, hidden=[32,32])", 2, seed=3)
        f.fit(moons, steps=20, batch=100, threads=threads, split=split)
        fits.setdefault((threads, split), []).append(f.parameters.copy())
    cols = fits[(4, "columns")]
    assert np.array_equal(cols[0], cols[1])
    assert np.abs(cols[0] - fits[(1, "rows")][0]).max() < 1e-4
    assert not np.array_equal(fits[(4, "rows")][0], cols[0])
    with pytest.raises(nflow.ArgumentError):
        nflow.Flow("maf(hidden=[8])", 2).fit(moons, steps=2, threads=2, split="diagonal")


def test_steps_callback_and_stop(moons):
    f = nflow.Flow("realnvp(layers=2, hidden=[16])", 2, seed=2)
    seen = []
    h = f.fit(moons, steps=60, batch=100, callback=lambda step, tl, vl: seen.append(step) or len(seen) < 2)
    assert len(seen) == 2 and h.stopped_early and h.epochs == 2


def test_ctrl_c_stops_cleanly(moons):
    f = nflow.Flow("maf(hidden=[16])", 2, seed=4)

    def interrupt(step, tl, vl):
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        f.fit(moons, epochs=50, callback=interrupt)
    assert np.isfinite(f.log_prob(moons[:10])).all(), "the flow stays usable"


def test_errors_map_to_exceptions(tmp_path):
    with pytest.raises(nflow.ArgumentError, match="unknown bijector"):
        nflow.Flow("nosuch", 2)
    with pytest.raises(nflow.DomainError, match="log"):
        nflow.Bijector("log").forward([[-1.0]])
    with pytest.raises(nflow.IOError, match="cannot open"):
        nflow.load(str(tmp_path / "missing.nflow"))
    with pytest.raises(nflow.ShapeError):
        nflow.Flow("maf(hidden=[4])", 3).log_prob(np.zeros((2, 2)))
    with pytest.raises(nflow.NumericalError):
        nflow.Flow("maf(hidden=[8])", 2).fit(np.full((100, 2), 1e20, np.float32) * [1, 0], epochs=3, lr=10)
    assert issubclass(nflow.IOError, nflow.Error)


def test_sampling_and_context():
    f = nflow.Flow("maf(hidden=[8], context=1)", 2, seed=0, context_dim=1)
    x = f.sample(5, seed=1, context=[0.0])
    assert x.shape == (5, 2)
    assert np.array_equal(x, f.sample(5, seed=1, context=[0.0]))
    x2, lp = f.sample_and_log_prob(4, seed=2, context=np.zeros((4, 1)))
    np.testing.assert_allclose(lp, f.log_prob(x2, context=np.zeros((4, 1))), atol=1e-4)
    with pytest.raises(nflow.ArgumentError, match="conditional"):
        f.log_prob(x)
    z = nflow.Flow("exp", 1).to_base([[1.0], [np.e]])
    np.testing.assert_allclose(z[:, 0], [0, 1], atol=1e-6)


def test_pickle_and_repr():
    f = nflow.Flow("realnvp(layers=2, hidden=[8])", 2, seed=5)
    g = pickle.loads(pickle.dumps(f))
    assert np.array_equal(g.parameters, f.parameters) and g.spec == f.spec
    assert repr(f) == "Flow('realnvp(layers=2, hidden=[8])', dim=2, parameters=%d)" % len(f.parameters)


def test_fit_density_with_a_python_target():
    def gauss(x):  # log p~ of N((1, -2), 0.5^2 I), unnormalised
        d = x - np.array([1.0, -2.0], np.float32)
        return -(d ** 2).sum(1) / 0.5, -d / 0.25

    f, h = nflow.fit_density(gauss, "affine(rank=0)", steps=2000, batch=64, lr=1e-2, seed=1)
    s = f.sample(4000, seed=3)
    np.testing.assert_allclose(s.mean(0), [1, -2], atol=0.05)
    np.testing.assert_allclose(s.std(0), [0.5, 0.5], atol=0.03)
    f2, h2 = nflow.fit_density("u1", "planar(layers=8)", steps=300, batch=128, lr=5e-3)
    assert np.isfinite(h2.train).all()


def test_gil_released_during_long_calls():
    f = nflow.Flow("realnvp(layers=6, hidden=[256,256])", 2, seed=0)
    x = np.random.default_rng(1).normal(size=(200000, 2)).astype(np.float32)
    inside = threading.Event()
    done = threading.Event()
    ticks = []

    def other():
        inside.wait()
        while not done.is_set():
            ticks.append(1)

    t = threading.Thread(target=other)
    t.start()
    inside.set()
    f.log_prob(x)  # a long C call: the other thread must run meanwhile
    done.set()
    t.join()
    assert len(ticks) > 100, "another Python thread ran while log_prob computed (%d ticks)" % len(ticks)


def test_no_leak_over_many_calls():
    def rss_kib():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    x = np.zeros((4, 2), np.float32)
    for _ in range(500):
        nflow.Flow("maf(hidden=[8])", 2).log_prob(x)
    before = rss_kib()
    for _ in range(10000):
        f = nflow.Flow("maf(hidden=[8])", 2)
        f.log_prob(x)
        nflow.Distribution("normal(0, 1)").log_prob([0.0])
    grew = rss_kib() - before
    assert grew < 4096, "10,000 flows grew the process by %d KiB" % grew


@pytest.mark.parametrize("script,args,expect", [
    ("walkthrough.py", [], "Normal(0,1).log_prob(2.01)                   = -2.938988"),
    ("maf_moons.py", ["--epochs", "50"], "test NLL on 10,000 fresh points"),
    ("realnvp_moons.py", ["--steps", "50", "--grid", "20"], "test NLL"),
])
def test_seed_examples_run(tmp_path, script, args, expect):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python", script)] + args,
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert expect in out, out


def test_docs_cover_the_api():
    with open(os.path.join(ROOT, "docs", "python.md")) as fh:
        doc = fh.read()
    for name in nflow.__all__:
        assert name in doc, "docs/python.md does not mention %s" % name
    for meth in ("fit", "log_prob", "sample", "sample_and_log_prob", "to_base", "save"):
        assert getattr(nflow.Flow, meth).__doc__, "Flow.%s has a docstring" % meth
        assert "Flow.%s" % meth in doc, "docs/python.md documents Flow.%s" % meth


def test_device():
    f = nflow.Flow("realnvp(layers=2, hidden=[8])", 2, seed=1)
    assert f.device == "cpu" and f.to("cpu") is f
    with pytest.raises(nflow.ArgumentError, match="unknown device"):
        f.to("tpu")
    if not nflow.cuda_available():
        with pytest.raises(nflow.UnsupportedError, match="built without CUDA"):
            f.to("cuda")
        assert f.device == "cpu"
