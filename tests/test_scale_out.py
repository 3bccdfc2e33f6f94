"""Scale-out: thread discipline, cheap pickling, Dask grid searches, partial_fit.

The Dask tests run a real ``LocalCluster`` (two worker processes, one thread
each, behind nannies) and compare with joblib's loky backend. Kept small: the
whole file runs in well under 90 s on two cores.
"""

import logging
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import joblib
import numba
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV

import sk_perturbed._kernels
from sk_perturbed import PerturbedRankingRegressor, PerturbedStructuredClassifier
from sk_perturbed._threads import cpu_budget, numba_threads, resolve_n_threads
from sk_perturbed.datasets import make_perfect_ranks

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

GRID = {"epsilon": [0.3, 1.0], "n_samples": [2, 6]}


@pytest.fixture(scope="module")
def ranks():
    return make_perfect_ranks(n_samples=90, n_features=4, n_labels=4, random_state=0)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def _ranker(**kw):
    return PerturbedRankingRegressor(max_iter=4, batch_size=15, random_state=0, **kw)


def _classifier(**kw):
    return PerturbedStructuredClassifier(max_iter=4, batch_size=25, random_state=0, **kw)


def _search(estimator, X, Y, n_jobs):
    return GridSearchCV(estimator, GRID, cv=3, n_jobs=n_jobs).fit(X, Y)


def _assert_same_search(a, b):
    assert a.best_params_ == b.best_params_
    assert_array_equal(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"])
    assert_array_equal(a.cv_results_["split0_test_score"], b.cv_results_["split0_test_score"])


def _coefs(est):
    return est.coefs_ + est.intercepts_


def _assert_same_model(a, b):
    for p, q in zip(_coefs(a), _coefs(b), strict=True):
        assert_array_equal(p, q)
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_


# --------------------------------------------------------------- thread rules
def test_auto_budget_follows_numba_setting_and_omp_cap(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert resolve_n_threads(None) == 1  # the caller's numba setting is a cap
    finally:
        numba.set_num_threads(previous)
    assert resolve_n_threads(None) == min(previous, numba.config.NUMBA_NUM_THREADS)
    # Dask's nanny and Ray set OMP_NUM_THREADS to the worker's share of the cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_budget() == 1 and resolve_n_threads(None) == 1
    # An explicit n_jobs is obeyed, and an inner automatic call inherits it.
    with numba_threads(numba.config.NUMBA_NUM_THREADS):
        with numba_threads(None):
            assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == previous


@pytest.mark.skipif(
    "NUMBA_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ,
    reason="loky passes the parent's thread variables on unchanged",
)
def test_loky_workers_split_the_cores():
    # joblib's loky backend starts its workers with NUMBA_NUM_THREADS and
    # OMP_NUM_THREADS = cpu_count() // n_jobs: two workers on two cores get one
    # numba thread each, never 2 x 2.
    budgets = joblib.Parallel(n_jobs=2)(joblib.delayed(resolve_n_threads)(None) for _ in range(4))
    assert set(budgets) == {max(1, joblib.cpu_count() // 2)}


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_concurrent_python_threads_share_the_budget(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    barrier = threading.Barrier(2, timeout=30)
    seen = []

    def worker():
        with numba_threads(None):
            barrier.wait()  # both threads are now inside a kernel context
            with numba_threads(None):
                seen.append(numba.get_num_threads())
            barrier.wait()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    budget = numba.config.NUMBA_NUM_THREADS
    assert seen == [budget // 2, budget // 2]


def test_threading_backend_same_results_and_no_oversubscription(ranks, monkeypatch):
    """GridSearchCV(n_jobs=2) on joblib's threading backend: concurrent fits in
    one process share numba's pool (numba's 'omp'/'tbb' layers are thread-safe;
    'workqueue' is serialized) and give the sequential results."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    X, Y = ranks
    sequential = _search(_ranker(), X, Y, n_jobs=None)

    kernel = sk_perturbed._kernels.perturbed_kernel
    lock = threading.Lock()
    running = {}
    peak = [0]

    def counting(compiled):
        def run(*args):
            ident = threading.get_ident()
            with lock:
                running[ident] = numba.get_num_threads()
                peak[0] = max(peak[0], sum(running.values()))
            try:
                return compiled(*args)
            finally:
                with lock:
                    del running[ident]

        return run

    counting_kernel = counting(kernel)
    counting_kernel.serial = counting(kernel.serial)  # one-thread calls
    monkeypatch.setattr(sk_perturbed._kernels, "perturbed_kernel", counting_kernel)
    with joblib.parallel_config(backend="threading"):
        threaded = _search(_ranker(), X, Y, n_jobs=2)
    _assert_same_search(sequential, threaded)
    budget = cpu_budget()
    # Two fits at once never run 2 x budget threads (at most one extra thread,
    # for one batch, while a second fit is starting).
    assert peak[0] <= budget + 1


def test_workqueue_layer_is_serialized():
    """numba's 'workqueue' layer aborts on concurrent launches; our kernel
    contexts serialize under it, so a threaded search still completes."""
    code = textwrap.dedent(
        """
        import warnings, joblib, numba
        from sklearn.model_selection import GridSearchCV
        from sk_perturbed import PerturbedRankingRegressor
        from sk_perturbed.datasets import make_perfect_ranks
        warnings.simplefilter("ignore")
        X, Y = make_perfect_ranks(n_samples=60, n_features=3, n_labels=4, random_state=0)
        est = PerturbedRankingRegressor(max_iter=3, batch_size=10, random_state=0)
        grid = {"epsilon": [0.3, 1.0], "n_samples": [2, 6]}
        seq = GridSearchCV(est, grid, cv=2).fit(X, Y)
        with joblib.parallel_config(backend="threading"):
            thr = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X, Y)
        assert numba.threading_layer() == "workqueue", numba.threading_layer()
        assert (seq.cv_results_["mean_test_score"] == thr.cv_results_["mean_test_score"]).all()
        print("OK")
        """
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("OK")


# ------------------------------------------------------------------- pickling
@pytest.mark.parametrize("make", [_ranker, _classifier])
def test_pickles_small_and_predicts_identically(make, ranks, iris):
    X, Y = ranks if make is _ranker else iris
    est = make()
    assert len(pickle.dumps(est)) < 2_000
    est.fit(X, Y)
    blob = pickle.dumps(est)
    # The weights, Adam's two moment estimates (needed to continue training
    # exactly) and small metadata: no jitted dispatcher, compiled code, scratch
    # buffer or thread pool travels with it.
    weights = sum(p.nbytes for p in _coefs(est))
    assert len(blob) < 3 * weights + 8_000, (len(blob), weights)
    assert b"numba" not in blob and b"Dispatcher" not in blob
    clone_ = pickle.loads(blob)
    assert_array_equal(clone_.predict(X), est.predict(X))
    assert_array_equal(clone_.predict_marginals(X), est.predict_marginals(X))
    # An unpickled model keeps training exactly like the original.
    _assert_same_model(clone_.partial_fit(X, Y), est.partial_fit(X, Y))


def test_fresh_process_loads_kernels_from_cache(ranks):
    """Workers (loky, Dask, Ray) are fresh processes: the numba kernels are
    ``cache=True``, so they load the compiled code instead of recompiling."""
    X, Y = ranks
    _ranker().fit(X, Y)  # warm the on-disk cache in this process
    code = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("ignore")
        from sk_perturbed import PerturbedRankingRegressor
        from sk_perturbed.datasets import make_perfect_ranks
        from sk_perturbed._kernels import perturbed_kernel
        X, Y = make_perfect_ranks(n_samples=90, n_features=4, n_labels=4, random_state=0)
        PerturbedRankingRegressor(max_iter=1, random_state=0).fit(X, Y)
        # The parallel kernel and its serial twin (one-thread calls).
        used = [perturbed_kernel.parallel, perturbed_kernel._serial]
        used = [k for k in used if k is not None]
        print(sum(sum(k.stats.cache_hits.values()) for k in used),
              sum(sum(k.stats.cache_misses.values()) for k in used))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    hits, misses = map(int, out.stdout.split())
    assert hits >= 1 and misses == 0


# ---------------------------------------------------------------- partial_fit
@pytest.mark.parametrize("shuffle", [True, False])
def test_partial_fit_whole_data_equals_fit_epochs(ranks, shuffle):
    """partial_fit on the whole data is one epoch of fit, bit for bit:
    the first call equals fit(max_iter=1); each later call equals a warm-started
    fit(max_iter=1); with shuffle=False, k calls equal fit(max_iter=k)."""
    X, Y = ranks
    est = _ranker(shuffle=shuffle)
    incremental = clone(est).partial_fit(X, Y)
    _assert_same_model(incremental, clone(est).set_params(max_iter=1).fit(X, Y))

    warm = clone(est).set_params(max_iter=1, warm_start=True).fit(X, Y)
    for _ in range(2):
        incremental.partial_fit(X, Y)
        warm.fit(X, Y)
    _assert_same_model(incremental, warm)
    assert incremental.loss_curve_ == warm.loss_curve_

    if not shuffle:
        _assert_same_model(incremental, clone(est).set_params(max_iter=3).fit(X, Y))


def test_partial_fit_classifier_whole_data_equals_fit(iris):
    X, y = iris
    est = _classifier(shuffle=False)
    incremental = clone(est)
    for _ in range(3):
        incremental.partial_fit(X, y, classes=[0, 1, 2])
    _assert_same_model(incremental, clone(est).set_params(max_iter=3).fit(X, y))


@pytest.mark.parametrize("loss", ["squared", "blackbox"])
def test_partial_fit_chunks_equal_one_epoch_for_noiseless_losses(ranks, loss):
    """Chunks in order, shuffle=False, batch_size dividing the chunk size: the
    same mini-batches as one fit epoch. Noiseless losses then match bit for bit;
    the perturbed losses draw each call's noise with the key (seed, call number,
    row index within the chunk), so they match in distribution only."""
    X, Y = ranks
    est = _ranker(shuffle=False, loss=loss)
    incremental = clone(est)
    for chunk in np.array_split(np.arange(len(X)), 3):
        incremental.partial_fit(X[chunk], Y[chunk])
    _assert_same_model_weights(incremental, clone(est).set_params(max_iter=1).fit(X, Y))


def _assert_same_model_weights(a, b):
    for p, q in zip(_coefs(a), _coefs(b), strict=True):
        assert_array_equal(p, q)
    assert a.t_ == b.t_


# ----------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def loky_searches(ranks, iris):
    return {
        "ranker": _search(_ranker(), *ranks, n_jobs=2),
        "classifier": _search(_classifier(), *iris, n_jobs=2),
    }


@pytest.mark.parametrize("name", ["ranker", "classifier"])
def test_dask_grid_search_matches_loky(name, dask_client, loky_searches, ranks, iris):
    make, data = (_ranker, ranks) if name == "ranker" else (_classifier, iris)
    with joblib.parallel_config(backend="dask"):
        on_dask = _search(make(), *data, n_jobs=-1)
    _assert_same_search(on_dask, loky_searches[name])


def test_dask_workers_get_one_thread(dask_client):
    # The nanny sets OMP_NUM_THREADS=1 in each worker process: the automatic
    # budget of a 1-thread worker is 1, whatever numba's pool size there.
    budgets = dask_client.run(resolve_n_threads, None)
    assert set(budgets.values()) == {1}


def test_dask_partial_fit_across_workers_is_bit_for_bit(dask_client, ranks):
    """Out-of-core training as dask-ml's Incremental does it: the model moves
    between workers (pickled) and trains on one chunk per task; it ends bit for
    bit equal to the same partial_fit sequence run locally."""
    X, Y = ranks
    chunks = np.array_split(np.arange(len(X)), 6)
    local = _ranker()
    for c in chunks:
        local.partial_fit(X[c], Y[c])

    workers = sorted(dask_client.scheduler_info()["workers"])
    model = dask_client.scatter(_ranker(), workers=[workers[0]])
    for i, c in enumerate(chunks):
        model = dask_client.submit(
            PerturbedRankingRegressor.partial_fit, model, X[c], Y[c],
            workers=[workers[i % len(workers)]], allow_other_workers=False, pure=False,
        )
    remote = model.result()
    _assert_same_model(remote, local)
    assert remote.loss_curve_ == local.loss_curve_


def test_dask_search_survives_a_killed_worker(dask_client, loky_searches, ranks):
    """A worker process dies mid-search (SIGKILL): the scheduler reruns its
    tasks elsewhere, the nanny restarts it, and the search ends with the same
    result as the loky run.

    ``scatter=[X, Y]`` replicates the data on every worker. Without it joblib's
    Dask backend scatters each argument over 1 kB to a single worker, and when
    that worker dies the data are gone: the search fails with
    ``FutureCancelledError`` (see docs/scaling.rst)."""
    import signal

    X, Y = ranks
    pids = dask_client.run(os.getpid)
    victim = sorted(pids)[0]
    result = {}

    def run_search():
        with joblib.parallel_config(backend="dask", scatter=[X, Y]):
            result["search"] = _search(_ranker(), X, Y, n_jobs=-1)

    thread = threading.Thread(target=run_search)
    thread.start()
    def ready():
        # A task runs on the victim, and the broadcast of X and Y has reached
        # both workers (killing the only holder of a replica loses it).
        replicas = [len(w) for k, w in dask_client.who_has().items() if k.startswith("ndarray-")]
        return bool(dask_client.processing().get(victim)) and len(replicas) >= 2 and min(replicas) >= 2

    deadline = time.monotonic() + 30
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dask_client.processing().get(victim), "no task reached the worker"
    assert ready(), "X and Y were not replicated on both workers"
    killed_while_running = thread.is_alive()
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(timeout=60)
    assert not thread.is_alive(), "the search did not finish after the worker died"
    assert killed_while_running
    _assert_same_search(result["search"], loky_searches["ranker"])
    dask_client.wait_for_workers(2, timeout=30)
