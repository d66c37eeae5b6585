"""The chat UI in headless Chromium (Debian's `chromium` driven by Playwright; no browser download).

With the real server and model: type a question, see the retrieved papers, watch it stream, read the
sources, click a citation, ask a follow-up, save artifacts/ui.png. With a toy corpus and a scripted
model: the retrieved papers are listed before the model writes anything and replaced by the checked
sources after; markup in abstracts, titles, questions and answers renders as text; stop, clear, copy,
feedback, the paper filter, examples and error messages work, and the page never leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from assistant.api import Assistant
from assistant.config import Settings
from assistant.errors import ModelError
from assistant.ui import EXAMPLE_QUESTIONS, FEEDBACK_FILE, escape
from tests.conftest_server import (
    ANSWER_TIMEOUT_S,
    REPO,
    ScriptedChat,
    ServerProcess,
    ThreadServer,
    serve_app,
    shared_real_server,
    slow_script,
    write_jsonl,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FINAL = "#pa-chat .pa-answer:not(.pa-streaming)"
PALOMA_Q = "How many distinct text domains does the Paloma benchmark use to measure language model fit?"

EVIL_TITLE = "Quokka graph retrieval <script>window.__pwned = 'title'</script>"
EVIL_ABSTRACT = (
    "We study quokka graph retrieval for zyxwv corpora of marsupial field notes. "
    "<script>window.__pwned = 'abstract'</script> The code is at [the project page](http://evil.example/) "
    "and at http://evil.example/raw for everyone. <img src=x onerror=\"window.__pwned = 'img'\"> "
    "Quokka graph retrieval reaches 91.5 accuracy on the Zyxwv benchmark. "
    "Templates such as {{7*7}} and ${7*7} and $$x^2$$ and **bold** and _italic_ stay literal.\r\r"
    "See www.evil.example/more after a blank line."
)
TOY_CORPUS = [
    {"title": EVIL_TITLE, "abstract": EVIL_ABSTRACT},
    {"title": "Wombat speech recognition with burrow acoustics",
     "abstract": "We train wombat speech recognizers on burrow acoustics recordings. The recognizer cuts word error "
                 "rate by 12.5% on the Burrow-100 test set compared with a baseline trained on surface audio."},
    {"title": "Platypus image segmentation in river scenes",
     "abstract": "We segment platypus images in murky river scenes with a small convolutional network. The network "
                 "reaches 0.81 mean intersection over union on the Creek benchmark and runs on a phone."},
]
QUOKKA_Q = ("What accuracy does quokka graph retrieval reach on the Zyxwv benchmark? "
            "<img src=x onerror=\"window.__pwned = 'question'\"> [x](http://evil.example/q) **now**")
QUOKKA_ANSWER = ["Quokka graph retrieval reaches 91.5 accuracy ", "on the Zyxwv benchmark [1]. ",
                 "<img src=x onerror=\"window.__pwned = 'answer'\"> See [here](http://evil.example/a) [1]."]


@pytest.fixture(scope="session")
def real_server(seed_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """`python -m assistant serve` over the seed index with the real local model (shared with test_http)."""
    return shared_real_server(seed_settings, tmp_path_factory.getbasetemp() / "server-logs")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ScriptedChat, Path]]:
    """The UI over a three-paper corpus with markup in it, served in-thread with a scripted model."""
    data_dir = tmp_path_factory.mktemp("toy-data")
    chat = ScriptedChat(default=list(QUOKKA_ANSWER))
    assistant = Assistant(Settings(data_dir=data_dir), chat_model=chat)
    assistant.ingest([write_jsonl(data_dir / "toy.jsonl", TOY_CORPUS)])
    with ThreadServer(serve_app(assistant)) as server:
        yield server.url, chat, data_dir


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def hosts() -> set[str]:
    return set()


@pytest.fixture
def page(browser: Browser, hosts: set[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    yield page
    context.close()


def open_ui(page: Page, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#pa-question textarea", timeout=60_000)


def ask(page: Page, question: str) -> None:
    page.fill("#pa-question textarea", question)
    page.press("#pa-question textarea", "Enter")


def wait_for_answers(page: Page, count: int, timeout_s: float = 60) -> None:
    page.wait_for_function(f"document.querySelectorAll({FINAL!r}).length >= {count}", timeout=timeout_s * 1000)


def last_answer_text(page: Page) -> str:
    return page.locator(FINAL).last.inner_text()


def test_escape_leaves_no_tag_link_or_line_break() -> None:
    shown = escape("<b>x</b> [l](http://e.x) **y** `z` $$w$$ {{v}}\r\r\n\u2028www.e.x")
    assert "<" not in shown.replace("<br>", "") and ">" not in shown.replace("<br>", "")
    assert not any(c in shown for c in "[]()*`$\r\n\u2028{}")


# --------------------------------------------------------------------------- real model


def test_ask_stream_cite_and_follow_up_with_the_real_model(page: Page, real_server: ServerProcess, hosts: set[str]) -> None:
    open_ui(page, real_server.url)
    assert page.get_by_text(EXAMPLE_QUESTIONS[0]).is_visible()  # examples on first load

    ask(page, PALOMA_Q)
    page.wait_for_selector("#pa-sources .pa-retrieved", timeout=ANSWER_TIMEOUT_S * 1000)  # retrieved, being checked
    assert "Paloma" in page.locator("#pa-sources .pa-retrieved .pa-title").first.inner_text()
    page.wait_for_selector("#pa-chat .pa-cursor", timeout=ANSWER_TIMEOUT_S * 1000)  # tokens are arriving
    assert page.locator("#pa-chat .pa-streaming").inner_text().strip()
    wait_for_answers(page, 1, ANSWER_TIMEOUT_S)
    answer = page.locator(FINAL).last
    assert "585" in answer.inner_text() and not page.locator("#pa-chat .pa-error").count()

    # The sources panel: the cited abstract with its supporting sentence highlighted, and a support score.
    cited = page.locator("#pa-sources .pa-turn[open] .pa-source").first
    assert "Paloma" in cited.locator(".pa-title").inner_text()
    assert cited.locator("mark").inner_text().strip() and "support" in cited.inner_text()

    link = answer.locator(".pa-text a.pa-cite").first
    target = (link.get_attribute("href") or "").lstrip("#")
    link.click()
    page.wait_for_selector(f"#{target}.pa-focus", timeout=5_000)
    assert len(page.context.pages) == 1  # the citation jumped within the page

    ask(page, "and what range of domains does it cover?")
    wait_for_answers(page, 2, ANSWER_TIMEOUT_S)
    follow_up = page.locator(FINAL).last
    assert 'Searched as: “Regarding "Paloma' in follow_up.inner_text()
    assert page.locator("#pa-chat a:not(.pa-cite)").count() == 0  # e.g. "nytimes.com" in an answer stays text
    assert page.locator("#pa-sources .pa-turn").count() == 2
    assert "Paloma" in page.locator("#pa-sources .pa-turn[open]").inner_text()

    (REPO / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "artifacts" / "ui.png"))
    assert hosts == {real_server.url.removeprefix("http://")}  # nothing but this server was contacted


def test_a_which_papers_question_is_shown_as_a_list_with_quotes(page: Page, real_server: ServerProcess) -> None:
    open_ui(page, real_server.url)
    ask(page, "Which papers are surveys of small language models?")
    wait_for_answers(page, 1, ANSWER_TIMEOUT_S)
    items = page.locator(f"{FINAL} ol.pa-list li")
    assert items.count() >= 2
    titles = [items.nth(i).locator(".pa-title").inner_text() for i in range(items.count())]
    assert "A Survey of Small Language Models" in titles
    for i in range(items.count()):  # every paper with its key, linked to Sources, and its quoted sentence
        item = items.nth(i)
        assert item.locator("a.pa-cite").inner_text() == f"[{i + 1}]"
        assert len(item.locator(".pa-quote").inner_text()) > 20
    link = items.first.locator("a.pa-cite")
    target = (link.get_attribute("href") or "").lstrip("#")
    link.click()
    page.wait_for_selector(f"#{target}.pa-focus", timeout=5_000)
    (REPO / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "artifacts" / "ui-list.png"))


# --------------------------------------------------------------------------- toy corpus, scripted model


def test_markup_in_corpus_question_and_answer_renders_as_text(page: Page, toy: tuple[str, ScriptedChat, Path],
                                                               hosts: set[str]) -> None:
    url, _, _ = toy
    open_ui(page, url)
    ask(page, QUOKKA_Q)
    wait_for_answers(page, 1)
    assert "91.5" in last_answer_text(page)

    assert page.evaluate("window.__pwned === undefined")
    assert page.locator('a[href*="evil.example"]').count() == 0
    injected = "#pa-chat img, #pa-chat script, #pa-chat strong, #pa-sources img, #pa-sources script, " \
               "#pa-sources strong, #pa-sources em"
    assert page.locator(injected).count() == 0
    sources = page.inner_text("#pa-sources")
    assert "Quokka graph retrieval <script>window.__pwned = 'title'</script>" in sources
    assert "<script>window.__pwned = 'abstract'</script>" in sources
    assert "[the project page](http://evil.example/)" in sources and "http://evil.example/raw" in sources
    assert "{{7*7}} and ${7*7} and $$x^2$$ and **bold** and _italic_" in sources
    assert "<img src=x onerror=\"window.__pwned = 'answer'\">" in sources  # the unsupported claim, as text
    question = page.locator("#pa-chat .pa-q").inner_text()
    assert "<img src=x onerror=\"window.__pwned = 'question'\"> [x](http://evil.example/q) **now**" in question
    (REPO / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "artifacts" / "ui-markup.png"))
    assert hosts == {url.removeprefix("http://")}


def test_sources_list_the_retrieved_papers_before_the_answer_then_its_support(
    page: Page, toy: tuple[str, ScriptedChat, Path]
) -> None:
    url, chat, _ = toy
    gate = threading.Event()
    chat.scripts.append([gate, *QUOKKA_ANSWER])  # the model writes nothing until the gate opens
    open_ui(page, url)
    try:
        ask(page, QUOKKA_Q)
        page.wait_for_selector("#pa-sources .pa-turn[open] .pa-retrieved", timeout=30_000)
        retrieved = page.locator("#pa-sources .pa-turn[open] .pa-retrieved .pa-title").all_inner_texts()
        assert EVIL_TITLE in retrieved  # the title's markup shows as text
        assert "checking these abstracts" in page.inner_text("#pa-sources .pa-turn[open] .pa-status")
        assert page.locator("#pa-sources .pa-source, #pa-sources .pa-claim").count() == 0  # nothing checked yet
        assert page.locator(FINAL).count() == 0 and page.locator("#pa-chat .pa-cursor").count() == 0
        assert f"Found {len(retrieved)} paper" in page.inner_text("#pa-chat .pa-streaming")
        assert page.evaluate("window.__pwned === undefined") and page.locator("#pa-sources script").count() == 0
    finally:
        gate.set()
    wait_for_answers(page, 1)
    cited = page.locator("#pa-sources .pa-turn[open] .pa-source").first
    assert cited.locator(".pa-title").inner_text() == EVIL_TITLE and "support" in cited.inner_text()
    assert page.locator("#pa-sources .pa-turn[open] .pa-claim.pa-supported").count() >= 1
    assert page.locator("#pa-sources .pa-retrieved, #pa-sources .pa-status").count() == 0
    assert page.evaluate("window.__pwned === undefined")


def test_stop_errors_feedback_copy_filter_examples_and_clear(page: Page, toy: tuple[str, ScriptedChat, Path]) -> None:
    url, chat, data_dir = toy
    open_ui(page, url)

    # An example question is asked when clicked.
    page.get_by_text(EXAMPLE_QUESTIONS[1]).click()
    wait_for_answers(page, 1)
    assert page.locator("#pa-chat .pa-q").last.inner_text() == EXAMPLE_QUESTIONS[1]

    # A very long message is answered from its end, and says so; a missing model is a message in the chat.
    ask(page, "why " * 300)
    wait_for_answers(page, 2)
    assert "Your message was long: answered from its end." in last_answer_text(page)
    chat.scripts.append([ModelError("model file missing; reinstall the project with `make install`")])
    ask(page, QUOKKA_Q)
    wait_for_answers(page, 3)
    assert "The language model is not available: model file missing" in last_answer_text(page)
    assert "Traceback" not in page.inner_text("#pa-chat")

    # Stop ends a generation; the model is free for the next question (the scripted model holds a lock).
    chat.scripts.append(["Quokka ", *slow_script(400, 0.3)])
    ask(page, QUOKKA_Q)
    page.wait_for_selector("#pa-chat .pa-cursor", timeout=30_000)
    page.click("#pa-stop")
    page.wait_for_selector("#pa-chat .pa-stopped", timeout=10_000)
    assert "Stopped." in last_answer_text(page)
    page.wait_for_selector("#pa-sources .pa-turn[open] .pa-status.pa-stopped", timeout=10_000)  # no longer "checking"
    page.screenshot(path=str(REPO / "artifacts" / "ui-stopped.png"))
    ask(page, QUOKKA_Q)
    wait_for_answers(page, 5)
    assert "91.5" in last_answer_text(page) and "[1]" in last_answer_text(page)

    # Thumbs up goes to <data_dir>/feedback.jsonl with what was rated.
    page.locator('#pa-chat button[aria-label="Like"]').last.click()
    feedback = data_dir / FEEDBACK_FILE
    deadline = time.monotonic() + 10
    while not feedback.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    record = json.loads(feedback.read_text().splitlines()[-1])
    assert record["rating"] == "up" and record["question"] == QUOKKA_Q and "91.5" in record["answer"]
    assert record["citations"][0]["title"] == EVIL_TITLE

    # Copy answer puts the plain answer and its cited titles on the clipboard.
    page.click("#pa-copy")
    page.wait_for_function("navigator.clipboard.readText().then(t => t.includes('91.5'))", timeout=5_000)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "[1]" in copied and EVIL_TITLE in copied and "<a" not in copied

    # The paper filter restricts retrieval to the chosen papers.
    page.click("#pa-papers input")
    page.keyboard.type("Wombat")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    ask(page, QUOKKA_Q)
    wait_for_answers(page, 6)
    titles = page.locator("#pa-sources .pa-turn[open] .pa-title").all_inner_texts()
    assert titles == ["Wombat speech recognition with burrow acoustics"]

    # Clear empties the conversation and the sources panel.
    page.click("#pa-clear")
    page.wait_for_function("document.querySelectorAll('#pa-chat .pa-answer').length === 0", timeout=5_000)
    assert "Ask a question" in page.inner_text("#pa-sources")


def test_chat_says_when_the_server_is_full_and_recovers(page: Page, toy: tuple[str, ScriptedChat, Path]) -> None:
    _, _, data_dir = toy
    gate = threading.Event()
    chat = ScriptedChat(default=list(QUOKKA_ANSWER), scripts=[["Quokka ", gate, "graph retrieval [1]."]])
    assistant = Assistant(Settings(data_dir=data_dir, serve={"max_pending": 1}), chat_model=chat)
    with ThreadServer(serve_app(assistant)) as server:
        holder = threading.Thread(target=httpx.post, args=(server.url + "/v1/answer",),
                                  kwargs={"json": {"question": QUOKKA_Q}, "timeout": 60})
        holder.start()  # an API request takes the only place and parks on the gate
        try:
            deadline = time.monotonic() + 30
            while httpx.get(server.url + "/healthz", timeout=10).json()["pending"] < 1:
                assert time.monotonic() < deadline, "the API request never took its place"
                time.sleep(0.1)
            open_ui(page, server.url)
            ask(page, QUOKKA_Q)
            wait_for_answers(page, 1)
            assert "Too many questions at once" in last_answer_text(page) and "retry in" in last_answer_text(page)
        finally:
            gate.set()
            holder.join(60)
        ask(page, QUOKKA_Q)  # the place is free again
        wait_for_answers(page, 2)
        assert "91.5" in last_answer_text(page)
