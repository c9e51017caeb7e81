"""``python -m bgclear.server --port 8000``: the same as ``bgclear serve``."""

from .run import serve_command

if __name__ == "__main__":
    serve_command.main(prog_name="python -m bgclear.server")
