"""The cohort on Ray: model actors reused across slides, fed by tile-reading Ray tasks.

- :class:`SlideWorker` (a Ray actor, one per GPU or per ``cpus_per_worker`` CPUs) builds the
  predictor once and runs :func:`~nucleus_seg.slide_inference.infer_slide` for one slide at a
  time, so model loading is paid once per worker, not per slide.
- Tiles are read by :func:`read_tiles_task` Ray tasks, a window of batches ahead of the model
  (:class:`RayTileReads`), in the order the single-slide path reads them: outputs are the same.
  They reserve no CPU: the window (``prefetch`` batches per worker) bounds them, and a reserved CPU
  would leave none for them when the actors hold every CPU.
- A worker process that dies (killed, out of memory, node lost) is restarted by Ray
  (``max_restarts=-1``, the model loaded again); its slide goes back to the queue and resumes after
  its last committed region wherever it runs next, up to ``max_attempts`` tries, then is reported
  failed with the reason. A reading task that dies is retried by Ray (``max_retries``).

Ray is imported here only: nothing else in the package starts or needs it.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections import OrderedDict, deque
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import InputError
from ..inference.engine import read_tile_batch
from .runner import FAILED, CohortProgress, SlideJob, failed_row, run_job

READ_RETRIES = 3
_VIEWS: "OrderedDict[bytes, object]" = OrderedDict()  # views a reading worker keeps open
_VIEWS_KEPT = 2


def _cached_view(open_view: Callable[[], object]):
    """The view ``open_view`` opens, kept open across the tasks a worker process runs for one
    slide (opening a slide costs more than reading a batch of tiles)."""
    key = pickle.dumps(open_view)
    view = _VIEWS.get(key)
    if view is None:
        view = _VIEWS[key] = open_view()
        while len(_VIEWS) > _VIEWS_KEPT:
            _, old = _VIEWS.popitem(last=False)
            close = getattr(getattr(old, "reader", None), "close", None)
            if close is not None:
                close()
    _VIEWS.move_to_end(key)
    return view


def read_tiles(open_view: Callable[[], object], tiles, path: str) -> list:
    """Body of the reading task: [(tile, pixels or (path, problem))] (read failures are values)."""
    return read_tile_batch(lambda: _cached_view(open_view), tiles, path)


_REMOTE: Dict[str, object] = {}


def read_tiles_task():
    import ray

    if "read" not in _REMOTE:
        _REMOTE["read"] = ray.remote(num_cpus=0, max_retries=READ_RETRIES)(read_tiles)
    return _REMOTE["read"]


class RayTileReads:
    """``read_batches`` for :func:`~nucleus_seg.inference.engine.stream_tiles`: each batch read
    by a Ray task, ``prefetch`` batches in flight while the model predicts, yielded in order."""

    def __init__(self, prefetch: int = 4):
        self.prefetch = max(1, prefetch)

    def __call__(self, view, batches, workers, open_view):
        import ray

        if open_view is None:
            raise ValueError("reading in Ray tasks needs open_view")
        task = read_tiles_task()
        path = str(getattr(view, "path", "<image>"))
        pending = deque()
        try:
            for batch in batches:
                pending.append(task.remote(open_view, batch, path))
                if len(pending) >= self.prefetch:
                    yield ray.get(pending.popleft())
            while pending:
                yield ray.get(pending.popleft())
        finally:
            for ref in pending:  # a slide that failed part-way: stop its reads
                ray.cancel(ref)


class SlideWorker:
    """Body of the model actor (wrapped by ``ray.remote`` in :func:`run_on_ray`)."""

    def __init__(self, make_predictor: Callable[[], object], prefetch: int):
        self.predictor = make_predictor()
        self.reads = RayTileReads(prefetch)

    def pid(self) -> int:
        return os.getpid()

    def process(self, job: SlideJob, attempt: int) -> dict:
        return run_job(job, self.predictor, self.reads, attempt)


def start_ray(address: Optional[str], num_cpus: Optional[int] = None):
    """Join ``address`` or start Ray on this machine (no dashboard, temp files in a private
    folder); a callable that undoes it. A Ray this process started before is used as it is."""
    import ray

    if ray.is_initialized():
        return lambda: None
    if address:
        try:
            if address.startswith("ray://"):  # Ray Client: the cluster runs everything
                ray.init(address=address)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()
            raise InputError(address, "cannot join the Ray cluster: "
                                      f"{text[0] if text else type(exc).__name__}") from None
        return ray.shutdown
    # short path: Ray's unix sockets live under it (108-byte limit)
    temp_dir = tempfile.mkdtemp(prefix="nucleus-ray-")
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False, _temp_dir=temp_dir)

    def stop():
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)

    return stop


def worker_options(workers: Optional[int], cpus_per_worker: float):
    """(number of model actors, their resource request) for the running cluster."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (workers or gpus), {"num_gpus": 1, "num_cpus": 1}
    cpus = resources.get("CPU", 1)
    return (workers or max(1, int(cpus // cpus_per_worker))), {"num_cpus": cpus_per_worker}


def _last_line(exc: BaseException) -> str:
    """The exception line at the end of a Ray error's remote traceback."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip().strip("^")]
    return lines[-1] if lines else type(exc).__name__


def _death_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_on_ray(jobs: Sequence[SlideJob], make_predictor, progress: CohortProgress, *,
               address: Optional[str] = None, workers: Optional[int] = None,
               cpus_per_worker: float = 1.0, max_attempts: int = 3, prefetch: int = 4,
               num_cpus: Optional[int] = None) -> List[dict]:
    """Process ``jobs`` on Ray; one summary row per job, in the order they finish."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    stop = start_ray(address, num_cpus)
    try:
        count, resources = worker_options(workers, cpus_per_worker)
        count = min(count, len(jobs))
        actor_cls = ray.remote(max_restarts=-1, max_task_retries=0, **resources)(SlideWorker)
        actors = [actor_cls.remote(make_predictor, prefetch) for _ in range(count)]
        try:  # the model loads in each actor: a bad config or checkpoint stops the run here
            ray.get([a.pid.remote() for a in actors])
        except RayActorError as exc:
            raise InputError(None, "the model workers could not start: "
                                   f"{_last_line(exc)}") from None
        queue = deque(jobs)
        attempts = {id(j): 0 for j in jobs}
        deaths: Dict[int, List[str]] = {id(j): [] for j in jobs}
        running = {}   # slide call -> (actor, job)
        restarts = {}  # ping of an actor that died -> actor: it takes slides again once back
        idle = list(actors)
        rows = []
        while queue or running:
            while queue and idle:
                actor, job = idle.pop(0), queue.popleft()
                attempts[id(job)] += 1
                running[actor.process.remote(job, attempts[id(job)])] = (actor, job)
            progress.running = len(running)
            progress.show()
            if not running and not restarts:  # every worker is gone for good
                for job in queue:
                    rows.append(failed_row(job.slide.line, str(job.slide.path), str(job.out_dir),
                                           "no model worker left", attempts[id(job)]))
                break
            (ref,), _ = ray.wait(list(running) + list(restarts), num_returns=1)
            if ref in restarts:
                actor = restarts.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(actor)
                except RayActorError:
                    pass  # it could not come back: the others go on
                continue
            actor, job = running.pop(ref)
            try:
                row = ray.get(ref)
                idle.append(actor)
            except RayActorError as exc:  # the worker process died: Ray restarts it
                # a call sent before Ray notices the death fails too: wait until it is back
                restarts[actor.pid.options(max_task_retries=-1).remote()] = actor
                deaths[id(job)].append(_death_reason(exc))
                if attempts[id(job)] < max_attempts:
                    queue.appendleft(job)  # the next free worker resumes it
                    continue
                row = failed_row(job.slide.line, str(job.slide.path), str(job.out_dir),
                                 f"the worker process died on each of {max_attempts} tries "
                                 f"(last: {deaths[id(job)][-1]})", attempts[id(job)])
            except RayTaskError as exc:  # a bug, not bad input: report it, go on with the rest
                idle.append(actor)
                row = failed_row(job.slide.line, str(job.slide.path), str(job.out_dir),
                                 f"{type(exc.cause).__name__}: {exc.cause}" if exc.cause
                                 else _death_reason(exc), attempts[id(job)])
            rows.append(row)
            progress.running = len(running)
            progress.finished(row)
        for actor in actors:
            ray.kill(actor)
        return rows
    finally:
        stop()


__all__ = ["FAILED", "RayTileReads", "SlideWorker", "read_tiles", "run_on_ray", "start_ray",
           "worker_options"]
