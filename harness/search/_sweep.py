"""The sweep: an Optuna study whose objective trains one configuration per trial, run by one or K workers.

`open_study` creates or resumes the study (a resumed study must mean what it meant:
harness.search._resume); `run_sweep` runs the worker loop (harness.search._worker) in this
process, or starts K worker processes that each rebuild the spec from its record (the one the
study stores) and share the storage. It returns a `SweepOutcome`; the CLI turns that into an exit
code. Each trial's record lives in its user attributes (readable by `optuna-dashboard` and the
`optuna` CLI) and its files in `<results>/trials/<number>/`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys

import torch

from harness.common import HarnessError, interrupts
from harness.data import load_corpus
from harness.search._options import SweepOptions, SweepOutcome, combine
from harness.search._spec import StudySpec
from harness.search._study import open_study
from harness.search._worker import run_worker, worker_main


def run_sweep(spec: StudySpec, options: SweepOptions) -> SweepOutcome:
    """One worker in this process, or K worker processes sharing the storage (each pinned to a GPU if several)."""
    with interrupts.installed():
        if options.workers <= 1:
            return run_worker(spec, options)
        return _run_workers(spec, options)


def _run_workers(spec: StudySpec, options: SweepOptions) -> SweepOutcome:
    corpus = load_corpus(spec.corpus, spec.corpus_options)  # refuse a bad corpus before any worker starts
    corpus.check_fits(spec.largest("seq_len"), spec.largest("batch_size"))
    open_study(spec, options, corpus=corpus)  # create (or check) it once, so workers do not race to
    del corpus
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # Each worker gets its share of the CPU threads: K processes each keeping all of torch's threads
    # oversubscribe the cores (measured: 2 workers on 2 cores ran at half the throughput of one).
    threads = max(1, cores // options.workers)
    places = placements(options.device_for(spec.device), options.workers, gpu_ids)
    _say_sharing(spec, options, sorted({gpu for gpu, _ in places if gpu is not None}) or gpu_ids, cores, threads)
    record = spec.to_record()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state or threads inherited
    results = context.SimpleQueue()
    procs = []
    for i, (gpu, device) in enumerate(places):
        worker = SweepOptions(**{**vars(options), "device": device, "workers": 1, "worker_index": i,
                                 "plain_progress": True})
        proc = context.Process(target=worker_main, args=(record, worker.to_record(), threads, gpu, results),
                               name=f"harness-worker-{i}")
        proc.start()
        procs.append(proc)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        # Ctrl-C on a terminal reaches the workers too; SIGTERM or SIGHUP may reach this process
        # alone. Pass the stop on to every worker still running (a worker already stopping ignores
        # it) and wait for each to mark its trial.
        interrupts.stopping()
        for p in procs:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join()
    said = {}
    while not results.empty():
        index, stop, message = results.get()
        said[index] = (stop, message)
    outcomes = []
    for i, p in enumerate(procs):
        stop, message = said.get(i, ("error", f"worker {i} ended without a word (exit code {p.exitcode})"))
        outcomes.append(SweepOutcome(spec.name, options.results_dir, options.storage_url, stop, message))
    return combine(outcomes)


def placements(device: str, workers: int, gpu_ids: list[str]) -> list[tuple[str | None, str]]:
    """Per worker: the GPU it is pinned to (CUDA_VISIBLE_DEVICES, None: not pinned) and the device it then names.

    A pinned worker sees its GPU as cuda:0, so `cuda:N` pins every worker to the Nth visible GPU and
    names it `cuda`; `auto` or `cuda` with several GPUs spreads the workers over them.
    """
    if device.startswith("cuda:"):
        index = device.partition(":")[2]
        if not index.isdigit() or int(index) >= len(gpu_ids):
            raise HarnessError(f"device {device!r}: only {len(gpu_ids)} CUDA device(s) visible")
        return [(gpu_ids[int(index)], "cuda")] * workers
    if device in ("auto", "cuda") and len(gpu_ids) > 1:
        return [(gpu_ids[i % len(gpu_ids)], device) for i in range(workers)]
    return [(None, device)] * workers


def _say_sharing(spec: StudySpec, options: SweepOptions, gpu_ids: list[str], cores: int, threads: int) -> None:
    on_cpu = (options.device_for(spec.device)) == "cpu" or not gpu_ids
    sharing = "CPU" if on_cpu else "GPU" if len(gpu_ids) < options.workers else None
    if sharing is None:
        return
    what = (f"{options.workers} workers share {cores} CPU cores ({threads} torch threads each); on a CPU "
            f"several workers are not faster than one, and each trial trains fewer characters per second"
            if sharing == "CPU" else
            f"{options.workers} workers share {len(gpu_ids)} GPU(s); without CUDA MPS their kernels take "
            f"turns, so expect little gain over one worker for large models")
    print(f"harness: note: {what} (README: Workers)", file=sys.stderr)
