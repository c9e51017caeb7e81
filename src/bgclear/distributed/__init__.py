"""Batch cutouts at scale: ``bgclear batch SRC DST`` on Ray Data, or on a local process pool.

Paths travel through the job, pixels never do: a worker reads its file, cuts it
out with exactly the code of ``bgclear remove`` (:func:`bgclear.batch.process_one`,
atomic write) and hands back a small status row. Each worker loads the model once
(a Ray Data actor pool, ``map_batches`` with the callable class :class:`CutoutWorker`;
without Ray, one per process of a process pool), so memory follows the number of
workers, not the number of files.

A file that fails is reported with its reason and never stops the job; a worker
that dies on a file is restarted and the file reported. Outputs that are already
complete and valid (they decode, at the size the source gives) are skipped, so a
killed job resumes where it stopped; a JSON report is written beside the outputs.

By default Ray runs embedded, sized to this machine and bound to 127.0.0.1;
``--address`` (or ``RAY_ADDRESS``) runs the same job on an existing cluster,
whose nodes must see SRC and DST at the same paths (a shared file system).

Modules: ``inputs`` (what to process, what is already done), ``worker`` (the
cutout worker and the local process pool), ``on_ray`` (Ray Data), ``destination``
(one job per folder, no partial files), ``report`` (progress and the JSON report),
``job`` (a whole job and the ``bgclear batch`` command).
"""

from .common import LOCK_NAME, REPORT_NAME, BatchError
from .destination import DestinationBusy, destination_lock, remove_stale_parts
from .inputs import (
    Plan,
    WorkItem,
    expected_output_size,
    output_is_complete,
    plan_inputs,
)
from .job import batch_command, default_local_workers, run_batch_job
from .worker import CutoutWorker, WorkerInitError

__all__ = [
    "LOCK_NAME", "REPORT_NAME", "BatchError", "CutoutWorker", "DestinationBusy", "Plan", "WorkItem",
    "WorkerInitError", "batch_command", "default_local_workers", "destination_lock", "expected_output_size",
    "output_is_complete", "plan_inputs", "remove_stale_parts", "run_batch_job",
]
