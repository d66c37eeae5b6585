"""Real servers on a free loopback port, for tests and benchmarks: `chroma run`, llama.cpp's OpenAI server, `serve`.

Each starts in its own process group with output in a log file, waits until its readiness URL
answers, and is stopped (SIGTERM to the group, SIGKILL after a grace period) when the context
manager exits, even when the test fails. A server that exits early or never comes up raises with
the end of its log. Does not configure the assistant: callers build Settings from `Server.url`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STOP_GRACE_S = 15.0
CHROMA_START_TIMEOUT_S = 120.0
LLAMA_START_TIMEOUT_S = 600.0  # loading a 1 GB GGUF on a busy 2-core machine
SERVE_START_TIMEOUT_S = 900.0  # a fresh data dir indexes the seeds and joins the model first
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct-q4_k_m"  # the name LLMSettings.model sends by default


@dataclass
class Server:
    """A server process started by this module."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """Process id of the server (the leader of its own process group)."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after STOP_GRACE_S; idempotent."""
        if self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)  # the group this module created for exactly this server
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, cmd: list[str], port: int, log_dir: Path, ready: Callable[[Server], bool], timeout_s: float,
          env: dict[str, str] | None = None) -> Server:
    """Start `cmd` in a new process group and poll `ready` until it is true; stop it and raise on failure."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name, f"http://127.0.0.1:{port}", port, process, log)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if ready(server):
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} did not come up in {timeout_s:.0f} s:\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise


def _status_ok(path: str, codes: tuple[int, ...] = (200,)) -> Callable[[Server], bool]:
    return lambda server: httpx.get(server.url + path, timeout=5).status_code in codes


def start_chroma(path: Path, log_dir: Path, port: int | None = None) -> Server:
    """`chroma run --path <path>` on loopback; ready when /api/v2/heartbeat answers."""
    port = port or free_port()
    cmd = [str(BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    return start("chroma", cmd, port, log_dir, _status_ok("/api/v2/heartbeat"), CHROMA_START_TIMEOUT_S,
                 env={"ANONYMIZED_TELEMETRY": "False"})


def start_llama_server(model_path: Path, log_dir: Path, n_ctx: int = 4096, n_threads: int = 2,
                       port: int | None = None) -> Server:
    """llama-cpp-python's OpenAI-compatible server over one GGUF; ready when /v1/models answers."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", MODEL_ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
           "--verbose", "False"]
    return start("llama-server", cmd, port, log_dir, _status_ok("/v1/models"), LLAMA_START_TIMEOUT_S)


def start_serve(data_dir: Path, model_path: Path | None, log_dir: Path, env: dict[str, str] | None = None,
                args: tuple[str, ...] = ()) -> Server:
    """`python -m assistant serve` on loopback; ready when /healthz answers 200 (index open, model loaded).

    `env` adds settings (PAPER_ASSISTANT_*), `args` adds command-line options such as --api-key."""
    port = free_port()
    full_env = {"PAPER_ASSISTANT_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    if model_path is not None:
        full_env["PAPER_ASSISTANT_LLM__MODEL_PATH"] = str(model_path)
    cmd = [sys.executable, "-m", "assistant", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    return start("serve", cmd, port, log_dir, _status_ok("/healthz"), SERVE_START_TIMEOUT_S, env=full_env)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Stop `server` when the block exits, however it exits."""
    try:
        yield server
    finally:
        server.stop()


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")
