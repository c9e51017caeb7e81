"""``python -m bgclear.distributed SRC DST [options]``: the same as ``bgclear batch``."""

from .job import batch_command

if __name__ == "__main__":
    batch_command()
