"""Peak resident memory of `paper-assistant serve` with the packaged model, beside the bare model.

The server is started on a free loopback port over a copy of the seed index (so it never
shares a Chroma folder with another process), waits until /healthz says the model is loaded,
answers one question, and its VmHWM (plus any child processes') is read from /proc before it is
stopped. The baseline is a bare process that loads the same GGUF with llama-cpp-python at the same
context size and answers one chat message: the memory the model itself needs.
Run `python -m benchmarks.memory --bare-model PATH` to get the baseline figure alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from harness.common import seed_settings
from harness.servers import peak_rss_bytes, running, start_serve

from .common import Result, Row, log

TARGET_BYTES = 3 * 2**30
QUESTION = "What perplexity does the Kneser-Ney baseline reach on the billion-word benchmark?"


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _tree_peak(pid: int) -> tuple[int, int]:
    """(peak RSS of the process, sum of the peaks of its children)."""
    children = 0
    for kid in _children(pid):
        try:
            children += peak_rss_bytes(kid)
        except (OSError, RuntimeError):
            pass
    return peak_rss_bytes(pid), children


def bare_model_peak(model: Path, n_ctx: int, n_threads: int) -> int:
    """Peak RSS of a process that loads the GGUF and answers one message (run in a subprocess)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--bare-model", str(model), "--n-ctx", str(n_ctx),
                          "--n-threads", str(n_threads)], capture_output=True, text=True, timeout=900, check=True)
    return int(json.loads(out.stdout)["vm_hwm_bytes"])


def run() -> Result:
    """VmHWM of `serve` after one answer, beside the bare model's."""
    settings = seed_settings()
    assert settings.llm.model_path is not None
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        data_dir = Path(tmp) / "data"
        shutil.copytree(settings.store_path, data_dir / "chroma")
        log("starting `paper-assistant serve` over a copy of the seed index")
        with running(start_serve(data_dir, settings.llm.model_path, Path(tmp) / "logs")) as server:
            reply = httpx.post(f"{server.url}/v1/answer", json={"question": QUESTION}, timeout=900)
            reply.raise_for_status()
            main_peak, child_peak = _tree_peak(server.pid)
    log("bare model process")
    bare = bare_model_peak(settings.llm.model_path, settings.llm.n_ctx, settings.llm.n_threads)
    gib = 2**30
    peak = main_peak + child_peak
    row = Row("memory", "peak RSS of `serve` after one answer", peak / gib, "GiB", "bare llama.cpp model, one answer",
              bare / gib, f"<= {TARGET_BYTES / gib:.0f} GiB", peak <= TARGET_BYTES)
    return Result(rows=[row], details={"serve_main_bytes": main_peak, "serve_children_bytes": child_peak,
                                       "bare_model_bytes": bare, "answer_abstained": reply.json().get("abstained")})


def _bare(model: Path, n_ctx: int, n_threads: int) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=n_threads, n_batch=512, verbose=False)
    llm.create_chat_completion(messages=[{"role": "user", "content": QUESTION}], max_tokens=32, temperature=0.0)
    print(json.dumps({"vm_hwm_bytes": peak_rss_bytes(os.getpid())}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="peak RSS of a bare llama.cpp model process")
    parser.add_argument("--bare-model", type=Path, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=2)
    args = parser.parse_args()
    _bare(args.bare_model, args.n_ctx, args.n_threads)
