"""A real two-node Ray cluster on loopback for the batch tests, and ``ray job submit`` against it.

The two nodes are two raylets on this machine at 127.0.0.2 and 127.0.0.3 (Ray
rewrites 127.0.0.1 to the host's network address, and a second node cannot
join a head that Ray keeps on 127.0.0.1), each with one CPU, token
authentication on, every port chosen free, and temporary folders of their own.
The head runs Ray's dashboard, which is where ``ray job submit`` sends jobs.
:func:`local_cluster` stops both nodes even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
BIN = Path(sys.executable).parent  # where pip put `ray` and `bgclear`
RAY = str(BIN / "ray")
#: Bounds on every wait, generous for a loaded 2-core CI machine.
START_TIMEOUT = 120.0
JOB_TIMEOUT = 300.0


@dataclass
class Cluster:
    gcs: str  # host:port, for a driver on a cluster node
    dashboard: str  # http://host:port: Ray's job server, for `ray job submit`
    env: dict[str, str]  # what a client needs: the cluster's auth token
    base: Path  # the nodes' temporary folders and logs


def _free_port(*hosts: str) -> int:
    """A port free on every one of ``hosts`` (Ray's agents listen on the node address and on 127.0.0.1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {hosts}")


def _wait_for(log: Path, proc: subprocess.Popen, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"ray start did not come up ({log}):\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM a `ray start --block` (it stops what it started), then SIGKILL its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): only what it started
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(10)


def _start_node(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


@contextlib.contextmanager
def local_cluster() -> Iterator[Cluster]:
    """Start the head (with its job server) and a second node; yields the :class:`Cluster`; stops both."""
    base = Path(tempfile.mkdtemp(prefix="bgrt-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port, dashboard_port = _free_port(HEAD_IP), _free_port(HEAD_IP)
    env = {
        **os.environ,
        # Job entrypoints run `bgclear` from the head's PATH: as on a machine whose venv was active at `ray start`.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",  # the raylets listen beyond loopback (Ray's choice): nothing gets in without it
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # tear-down in seconds, not 30
    }
    env.pop("RAY_ADDRESS", None)
    common = ["--block", "--num-cpus", "1", "--object-store-memory", str(200 * 1024**2), "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    try:
        head_log = base / "head.log"
        procs.append(_start_node(
            ["--head", "--node-ip-address", HEAD_IP, "--port", str(port),
             "--include-dashboard", "true", "--dashboard-host", HEAD_IP, "--dashboard-port", str(dashboard_port),
             # Ray's fixed defaults (10001, 52365) would meet another Ray on this machine: free ports instead.
             "--ray-client-server-port", str(_free_port("127.0.0.1")),
             "--dashboard-agent-listen-port", str(_free_port(HEAD_IP, "127.0.0.1")),
             "--temp-dir", str(base / "head"), *common], head_log, env))
        _wait_for(head_log, procs[0], "Ray runtime started", START_TIMEOUT)
        worker_log = base / "worker.log"
        procs.append(_start_node(
            ["--address", f"{HEAD_IP}:{port}", "--node-ip-address", WORKER_IP,
             "--dashboard-agent-listen-port", str(_free_port(WORKER_IP, "127.0.0.1")),
             "--temp-dir", str(base / "worker"), *common], worker_log, env))
        _wait_for(worker_log, procs[1], "Ray runtime started", START_TIMEOUT)
        client_env = {k: env[k] for k in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        yield Cluster(gcs=f"{HEAD_IP}:{port}", dashboard=f"http://{HEAD_IP}:{dashboard_port}", env=client_env,
                      base=base)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


# --- jobs ---------------------------------------------------------------------------

def _ray_cli(cluster: Cluster, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **cluster.env, "RAY_ADDRESS": cluster.dashboard})


def submit_job(cluster: Cluster, working_dir: Path, entrypoint: list[str], submission_id: str,
               env_vars: dict[str, str] | None = None, timeout: float = JOB_TIMEOUT) -> subprocess.CompletedProcess:
    """``ray job submit`` as a user runs it: uploads ``working_dir``, waits for the job, prints its logs.

    A job still running after ``timeout`` is stopped, and the test fails with what it printed.
    """
    args = ["job", "submit", "--address", cluster.dashboard, "--submission-id", submission_id,
            "--working-dir", str(working_dir)]
    if env_vars:
        args += ["--runtime-env-json", json.dumps({"env_vars": env_vars})]
    deadline = time.monotonic() + timeout
    try:
        while True:
            result = _ray_cli(cluster, [*args, "--", *entrypoint], max(1.0, deadline - time.monotonic()))
            # The job server waits 10 s for the head's agent; on a loaded machine it can be later than that.
            if "Failed to get head node agent" not in result.stdout + result.stderr or time.monotonic() > deadline - 60:
                return result
            time.sleep(5)
    except subprocess.TimeoutExpired as exc:
        with contextlib.suppress(Exception):
            _ray_cli(cluster, ["job", "stop", submission_id], 60)
        raise AssertionError(f"job {submission_id} still running after {timeout:.0f}s:\n{exc.stdout}\n{exc.stderr}")


_JOB_INFO = """
import json, sys
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
info = client.get_job_info(sys.argv[2])
print(json.dumps({"status": info.status.value, "message": info.message, "entrypoint": info.entrypoint,
                  "driver_exit_code": info.driver_exit_code, "logs": client.get_job_logs(sys.argv[2])}))
"""


def job_info(cluster: Cluster, submission_id: str) -> dict:
    """Status, message, driver exit code and logs of a job, from the job server (Ray's JobSubmissionClient)."""
    result = subprocess.run([sys.executable, "-c", _JOB_INFO, cluster.dashboard, submission_id], capture_output=True,
                            text=True, timeout=120, env={**os.environ, **cluster.env})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
