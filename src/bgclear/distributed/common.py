"""Names shared by the batch modules."""

import datetime as _dt

import click

REPORT_NAME = "bgclear-batch-report.json"
LOCK_NAME = ".bgclear-batch.lock"
#: Object store of the embedded Ray: only paths and status rows pass through it.
EMBEDDED_OBJECT_STORE_BYTES = 256 * 1024**2
#: Ray Data keeps a few KB of bookkeeping per file in the driver, so very long lists
#: run as consecutive rounds of this many files; each round starts its workers once.
DEFAULT_ROUND_SIZE = 5000
#: A file whose worker process dies is tried this many more times before it is reported.
CRASH_RETRIES = 2
NO_RESULT = "no result: the worker process died while processing this file (crash or out of memory)"
ROW_FIELDS = ("index", "status", "reason", "seconds", "warnings", "node", "pid", "peak_rss_mb", "engine", "precision",
              "threads")



class BatchError(click.ClickException):
    """The job cannot start or go on (exit status 2; a file that fails is exit status 1)."""

    exit_code = 2


def timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")
