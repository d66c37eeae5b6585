"""Embeddings by configuration, against a real OpenAI-compatible embeddings server.

llama-cpp-python's server with embeddings on, over the packaged GGUF (tests/embed_server.py),
is started on a free loopback port for this module. Corpus and questions both go through it; an
index built with the packaged embedder in the same data folder is kept apart, and `ingest` says
which collection it uses and why. A closed port is a one-line BackendUnavailable naming the setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant
from assistant.backends import MiniLMEmbedder, OpenAIEmbedder, make_embedder
from assistant.config import Settings
from assistant.errors import BackendUnavailable
from assistant.store import Store
from harness.embed_server import EMBED_ALIAS, start_embedding_server
from harness.servers import Server, free_port, running
from tests.conftest import REPO
from tests.fakes import QueueChat

CORPUS = [
    {"title": "Sparse Routing for Speech Recognition",
     "abstract": "Sparse expert routing cuts word error rate on LibriSpeech by 9% at equal compute."},
    {"title": "Graph Networks for Molecules",
     "abstract": "We predict molecule properties with message-passing graph networks on QM9."},
    {"title": "Diffusion Models for Image Synthesis",
     "abstract": "A denoising diffusion model reaches an FID of 3.2 on ImageNet 256x256."},
]


@pytest.fixture(scope="module")
def embed_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real embeddings server, for this module."""
    with running(start_embedding_server(model_path, tmp_path_factory.mktemp("embed-server"))) as server:
        yield server


def server_settings(server: Server, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, embed={"backend": "openai", "base_url": f"{server.url}/v1",
                                              "model": EMBED_ALIAS, "batch_size": 2})


def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CORPUS), encoding="utf-8")
    return path


@pytest.mark.e2e
@pytest.mark.slow
def test_server_vectors_are_normalised_in_order_and_named_by_model_and_size(embed_server: Server,
                                                                             tmp_path: Path) -> None:
    embedder = make_embedder(server_settings(embed_server, tmp_path).embed)
    assert isinstance(embedder, OpenAIEmbedder)
    texts = [f"{row['title']}\n{row['abstract']}" for row in CORPUS]
    batched = embedder.embed(texts)  # two requests of batch_size 2
    assert batched.shape == (3, embedder.dim) and embedder.name == f"openai:{EMBED_ALIAS}:{embedder.dim}d"
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-4)
    one_by_one = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.all(np.sum(batched * one_by_one, axis=1) > 0.99)  # same text, same vector, whatever the batch


@pytest.mark.e2e
@pytest.mark.slow
def test_corpus_and_questions_go_through_the_server(embed_server: Server, tmp_path: Path) -> None:
    settings = server_settings(embed_server, tmp_path / "data")
    assistant = Assistant(settings, chat_model=QueueChat([]))
    report = assistant.ingest([corpus_file(tmp_path)])
    assert (report.papers, report.chunks_added) == (3, 3)
    server_embedder = assistant.embedder
    assert isinstance(server_embedder, OpenAIEmbedder)
    # One embedder for everything: the store's vectors, the question, and the evidence sentences.
    assert assistant.store.embedder is server_embedder and assistant.sentences.embedder is server_embedder
    assert assistant.retriever.embed_model._embedder is server_embedder
    hits = assistant.retriever.hits("Which model lowers word error rate on LibriSpeech?", mode="dense")
    assert hits and hits[0].node.metadata["title"] == "Sparse Routing for Speech Recognition"
    question = server_embedder.embed(["Which model lowers word error rate on LibriSpeech?"])[0]
    stored = assistant.store.chunks.get(ids=[hits[0].node.node_id], include=["embeddings"])["embeddings"][0]
    assert abs(float(np.dot(question, stored)) - hits[0].dense) < 1e-3  # the question vector came from the server


@pytest.mark.e2e
@pytest.mark.slow
def test_switching_embedder_builds_a_new_collection_and_ingest_says_why(embed_server: Server,
                                                                        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    corpus = corpus_file(tmp_path)
    local = Store(Settings(data_dir=data_dir), MiniLMEmbedder(Settings().embed))
    local.ingest_files([corpus])
    env = {**os.environ, "PAPER_ASSISTANT_DATA_DIR": str(data_dir), "PAPER_ASSISTANT_EMBED__BACKEND": "openai",
           "PAPER_ASSISTANT_EMBED__BASE_URL": f"{embed_server.url}/v1", "PAPER_ASSISTANT_EMBED__MODEL": EMBED_ALIAS}
    done = subprocess.run([sys.executable, "-m", "assistant", "ingest", "--json", str(corpus)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["collection"] != local.name and report["embedder"].startswith(f"openai:{EMBED_ALIAS}:")
    assert f"using collection {report['collection']}" in done.stderr and "is built anew" in done.stderr
    assert f"{local.name} (3 chunks; embedder all-MiniLM-L6-v2-onnx-int8 (384-d)" in done.stderr
    assert local.chunks.count() == 3 and report["chunks"] == 3  # both kept, never mixed
    again = subprocess.run([sys.executable, "-m", "assistant", "ingest", "--json", str(corpus)], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=600, check=False)
    assert json.loads(again.stdout)["collection"] == report["collection"]  # nothing changed: same index
    assert json.loads(again.stdout)["chunks_embedded"] == 0
    assert "is kept apart" in again.stderr


def test_closed_port_is_backend_unavailable_naming_the_setting() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: refused at once
    with pytest.raises(BackendUnavailable, match="PAPER_ASSISTANT_EMBED__BASE_URL") as caught:
        OpenAIEmbedder(Settings(embed={"backend": "openai", "base_url": url, "model": "m", "max_retries": 0}).embed)
    assert url in str(caught.value) and "\n" not in str(caught.value)
