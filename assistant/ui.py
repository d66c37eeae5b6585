"""The Gradio chat UI over a Runtime: streamed answers, a sources panel, follow-ups, paper filter, feedback.

The sources panel lists the retrieved papers as soon as retrieval is done (marked as being checked),
and replaces them with the grounded sources (cited abstracts, support scores, checked claims) when
the answer arrives.

`build_ui(runtime)` returns the Blocks; `mount_ui(app, runtime)` mounts them at `/` of an ASGI app
with the page's CSS and click script. The HTML pieces are Jinja2 macros (templates/chat.html.j2)
rendered with autoescape, and every value placed in them goes through `escape`: HTML-escaped,
markdown punctuation entity-encoded, line breaks as <br>, so an abstract holding `<script>` or a
markdown link shows as plain text. Thumbs up/down go to <data_dir>/feedback.jsonl. Answers go
through the runtime like the API's (the same admission, follow-up rewriting and health record).
Does not answer questions (Assistant does) nor serve the API (server.py).
"""

from __future__ import annotations

import hmac
import html
import json
import re
import sys
import threading
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from jinja2 import Environment, PackageLoader
from jinja2.ext import Extension
from markupsafe import Markup

from .api import Assistant
from .errors import AssistantError
from .followup import CitedPaper, Turn, rewrite_followup
from .runtime import Runtime
from .text import CITATION_MARK
from .types import Answer, Paper, Passage

FEEDBACK_FILE = "feedback.jsonl"
EXAMPLE_QUESTIONS = (
    "Which papers are surveys?",
    "What methods make language model inference faster, and by how much?",
    "How do the papers measure hallucination?",
)
Message = dict[str, Any]
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
SYSTEM_MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")

# Markdown punctuation as numeric entities: after html.escape nothing can open a tag, and with these
# nothing can form a link, emphasis, code span or LaTeX either. '#', '&' and ';' stay: entities use them.
_MD_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "[]()*_`\\{}$~|!"})
_LINE_BREAK = re.compile(r"\r\n?|[\n\v\f\x85\u2028\u2029]")
_TEMPLATE_BREAK = re.compile(r"\n[ \t]*")
_WAIT = re.compile(r'<span class="pa-wait">[^<]*</span>')


def escape(text: str) -> str:
    """`text` safe to place in the chat's markdown or in HTML: no tags, links or markup survive.

    Every line break becomes <br>, so the text can never end the one-line HTML block it sits in
    (after which markdown, and its autolinking, would apply).
    """
    return _LINE_BREAK.sub("<br>", html.escape(text, quote=True).translate(_MD_ENTITIES))


def _finalize(value: Any) -> Any:
    """Every value a template prints: pieces already rendered pass, anything else is escaped."""
    return value if isinstance(value, Markup) else Markup(escape(str(value)))


class _OneLine(Extension):
    """The template's newlines and indentation are layout only, removed before it is compiled: each
    piece must be one line, or markdown would end its HTML block (escaped values hold no newline)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _TEMPLATE_BREAK.sub("", source)


_PIECES = Environment(loader=PackageLoader("assistant", "templates"), autoescape=True, finalize=_finalize,
                      extensions=[_OneLine]).get_template("chat.html.j2").module


def _render(piece: str, *args: Any) -> str:
    """One HTML piece, rendered by its macro."""
    return str(getattr(_PIECES, piece)(*args))


# --------------------------------------------------------------------------- chat messages


def user_message(question: str) -> Message:
    """The user's question as a chat message."""
    return {"role": "user", "content": _render("user_message", question)}


def pending_message(question: str, standalone: str, found: int | None = None) -> Message:
    """The assistant's placeholder while retrieving (`found` None) and then waiting for the model."""
    return {"role": "assistant", "content": _render("pending", question, standalone, found)}


def streaming_message(question: str, standalone: str, text: str) -> Message:
    """The assistant's message while tokens arrive."""
    return {"role": "assistant", "content": _render("streaming", question, standalone, text)}


def _segments(text: str) -> list[tuple[str, str]]:
    """(text, citation key or "") pieces of an answer, in order."""
    out: list[tuple[str, str]] = []
    last = 0
    for match in CITATION_MARK.finditer(text):
        out.append((text[last : match.start()], match.group(1)))
        last = match.end()
    out.append((text[last:], ""))
    return out


def answer_message(question: str, standalone: str, answer: Answer, turn: int, drop_unsupported: bool) -> Message:
    """The final assistant message: answer text with citation links (or the list) and a note on unsupported claims."""
    html_ = _render("answer_message", question, standalone, answer, turn, _segments(answer.answer), drop_unsupported)
    return {"role": "assistant", "content": html_}


_ERROR_WORDS = {  # by the error's code, so the chat and the API classify failures alike
    "invalid_request": "I can't take that question: {}",
    "server_busy": "Too many questions at once: {}.",
    "backend_timeout": "The language model server did not answer: {}",
    "backend_unavailable": "The language model server did not answer: {}",
    "model_unavailable": "The language model is not available: {}",
    "store_unavailable": "The paper index is not available: {}",
}


def error_message(exc: BaseException) -> Message:
    """An error as a chat message, in words, without a traceback."""
    if isinstance(exc, AssistantError):
        text = _ERROR_WORDS.get(exc.code, "Something went wrong: {}").format(exc)
    else:
        text = "Something went wrong while answering; the server log has the details. Try again."
    return {"role": "assistant", "content": _render("error_message", text)}


# --------------------------------------------------------------------------- sources panel

EMPTY_SOURCES = _render("empty_sources")


def highlight(abstract: str, quote: str) -> Markup:
    """The escaped abstract with the supporting sentence marked (or the quote shown apart if not found)."""
    quote = quote.strip()
    at = abstract.find(quote) if quote else -1
    if at < 0:
        return Markup(_render("highlight", abstract, quote, "", False))
    end = at + len(quote)
    return Markup(_render("highlight", abstract[:at], abstract[at:end], abstract[end:], True))


def turn_sources(turn: int, entry: dict[str, Any], papers: dict[str, Paper], drop_unsupported: bool, latest: bool) -> str:
    """The sources of one answered turn: cited papers, checked claims, and retrieved-but-uncited papers."""
    answer = Answer.model_validate(entry["answer"])
    cited = []
    for c in answer.citations:
        paper = papers.get(c.paper_id)
        cited.append((c, highlight(paper.raw_abstract, c.quote) if paper else c.quote))
    cited_ids = {c.paper_id for c in answer.citations}
    uncited = [(p, papers[p.paper_id].raw_abstract if p.paper_id in papers else p.text)
               for p in answer.passages if p.paper_id not in cited_ids]
    return _render("turn_sources", turn, entry["question"], answer, cited, uncited, drop_unsupported, latest)


def retrieved_sources(turn: int, entry: dict[str, Any], latest: bool) -> str:
    """The papers retrieved for a turn that has no answer (yet): being checked, or left by a stop or an error.

    Shows each passage's selected sentences, which came with the event, so nothing is read from the
    store while the answer is being written."""
    passages = [Passage.model_validate(p) for p in entry["retrieved"]]
    status = "stopped" if entry.get("stopped") else "failed" if entry.get("error") else "checking"
    return _render("retrieved_sources", turn, entry["question"], passages, status, latest)


def sources_html(turns: list[dict[str, Any]], papers: dict[str, Paper], drop_unsupported: bool) -> str:
    """The sources panel: every answered turn (or one whose papers are retrieved), the latest first and open."""
    shown = [(i, t) for i, t in enumerate(turns) if t.get("answer") or t.get("retrieved")]
    if not shown:
        return EMPTY_SOURCES
    latest = shown[-1][0]
    sections = [Markup(turn_sources(i, t, papers, drop_unsupported, i == latest) if t.get("answer")
                       else retrieved_sources(i, t, i == latest)) for i, t in reversed(shown)]
    return _render("sources", sections)


# --------------------------------------------------------------------------- conversation state


def history_of(turns: list[dict[str, Any]]) -> list[Turn]:
    """The answered turns as follow-up context."""
    out = []
    for t in turns:
        if t.get("answer"):
            a = t["answer"]
            out.append(Turn(question=t["standalone"], answer=a["answer"],
                            citations=[CitedPaper(title=c["title"], paper_id=c["paper_id"]) for c in a["citations"]]))
    return out


class FeedbackLog:
    """Appends one JSON line per thumbs up/down to <data_dir>/feedback.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        """Append `record` with a UTC timestamp."""
        line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **record},
                          ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def feedback_record(liked: bool | str, message_index: int, chat: list[Message], turns: list[dict[str, Any]]) -> dict[str, Any]:
    """What a thumbs up/down is about: the turn of the rated assistant message."""
    turn_no = sum(1 for m in chat[:message_index] if m.get("role") == "assistant")
    entry = turns[turn_no] if turn_no < len(turns) else {}
    answer = entry.get("answer") or {}
    rating = "up" if liked is True else "down" if liked is False else str(liked)
    return {
        "rating": rating,
        "question": entry.get("question", ""),
        "standalone_question": entry.get("standalone", ""),
        "answer": answer.get("answer", ""),
        "abstained": answer.get("abstained"),
        "citations": [{"key": c["key"], "paper_id": c["paper_id"], "title": c["title"]}
                      for c in answer.get("citations", [])],
        "error": entry.get("error"),
        "model": answer.get("model", ""),
        "index_fingerprint": answer.get("index_fingerprint", ""),
    }


# --------------------------------------------------------------------------- the app

CSS = """
.pa-answer mark, .pa-abstract mark { background: #fde68a; color: #1f2937; padding: 0 2px; border-radius: 2px; }
.pa-note { font-size: 0.85em; opacity: 0.75; margin-bottom: 4px; }
.pa-refs { margin-top: 6px; font-size: 0.85em; opacity: 0.85; }
.pa-list { margin: 6px 0 0 1.2em; padding: 0; }
.pa-list li { margin-bottom: 6px; }
.pa-list .pa-quote { font-size: 0.9em; opacity: 0.85; }
.pa-warn { margin-top: 6px; font-size: 0.9em; color: #9a3412; }
.pa-error { color: #b91c1c; }
.pa-cursor { animation: pa-blink 1s steps(1) infinite; opacity: 0.6; }
@keyframes pa-blink { 50% { opacity: 0; } }
a.pa-cite { text-decoration: none; font-weight: 600; color: #2563eb; cursor: pointer; }
.pa-sources h3 { margin: 0 0 8px 0; }
.pa-sources h4 { margin: 10px 0 4px 0; font-size: 0.9em; text-transform: uppercase; letter-spacing: 0.03em; opacity: 0.8; }
.pa-turn { border: 1px solid var(--border-color-primary, #e5e7eb); border-radius: 8px; padding: 6px 10px; margin-bottom: 8px; }
.pa-turn > summary { cursor: pointer; font-weight: 600; }
.pa-turn-no { display: inline-block; min-width: 2em; opacity: 0.6; }
.pa-source { border-left: 3px solid #2563eb; padding: 4px 8px; margin: 6px 0; border-radius: 4px; transition: background 0.4s; }
.pa-source.pa-focus { background: rgba(37, 99, 235, 0.12); }
.pa-source-head { margin-bottom: 4px; }
.pa-key { font-weight: 700; color: #2563eb; }
.pa-title { font-weight: 600; }
.pa-score { font-size: 0.8em; opacity: 0.7; white-space: nowrap; margin-left: 4px; }
.pa-abstract { font-size: 0.9em; line-height: 1.45; }
.pa-claims { padding-left: 1.1em; margin: 0; }
.pa-claim { margin: 3px 0; font-size: 0.9em; }
.pa-flag { font-weight: 600; font-size: 0.85em; margin-right: 4px; }
.pa-supported .pa-flag { color: #15803d; }
.pa-unsupported { text-decoration: line-through; text-decoration-color: rgba(185, 28, 28, 0.6); }
.pa-unsupported .pa-flag { color: #b91c1c; text-decoration: none; display: inline-block; }
.pa-uncited { margin: 4px 0; font-size: 0.9em; }
.pa-uncited > summary { cursor: pointer; }
.pa-retrieved { margin: 4px 0; font-size: 0.9em; border-left: 3px solid #9ca3af; padding-left: 8px; }
.pa-retrieved > summary { cursor: pointer; }
.pa-status { font-size: 0.85em; opacity: 0.8; margin: 2px 0 6px 0; }
"""

# Citation links jump to their source: open the turn's section, scroll to the paper, flash it.
# Capture phase and preventDefault, so the chat's own link handling never opens a new tab.
HEAD = """
<script>
document.addEventListener("click", function (event) {
  var link = event.target && event.target.closest ? event.target.closest("a.pa-cite") : null;
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  var id = (link.getAttribute("href") || "").replace(/^#/, "");
  var target = document.getElementById(id);
  if (!target) return;
  var section = target.closest("details");
  if (section) section.open = true;
  target.scrollIntoView({behavior: "smooth", block: "center"});
  document.querySelectorAll(".pa-source.pa-focus").forEach(function (el) { el.classList.remove("pa-focus"); });
  target.classList.add("pa-focus");
}, true);
</script>
"""

# Copies the latest answer as a person reads it: the text with [n] markers, then the cited titles.
COPY_JS = """
() => {
  const answers = document.querySelectorAll("#pa-chat .pa-answer:not(.pa-streaming):not(.pa-error)");
  const last = answers.length ? answers[answers.length - 1] : null;
  if (!last) return [];
  const part = (selector) => { const el = last.querySelector(selector); return el ? el.innerText.trim() : ""; };
  const text = [part(".pa-text"), part(".pa-refs")].filter(Boolean).join("\\n\\n");
  if (text && navigator.clipboard) navigator.clipboard.writeText(text);
  return [];
}
"""


def _paper_choices(assistant: Assistant) -> list[tuple[str, str]]:
    return [(title, pid) for pid, title in assistant.papers.titles()]


def build_ui(runtime: Runtime, examples: tuple[str, ...] = EXAMPLE_QUESTIONS, api_path: str | None = None) -> gr.Blocks:
    """The chat UI: conversation and question box on the left, sources panel on the right; the intro
    points at the HTTP API when one is served at `api_path`."""
    assistant = runtime.assistant
    drop_unsupported = assistant.settings.drop_unsupported_claims
    feedback = FeedbackLog(assistant.settings.data_dir / FEEDBACK_FILE)

    with gr.Blocks(title="Paper assistant", analytics_enabled=False) as demo:
        turns = gr.State([])
        api = f" The HTTP API is at `{api_path}` ([docs](/docs))." if api_path else ""
        gr.Markdown(f"### Paper assistant\nAsks the indexed abstracts ({len(assistant.papers)} papers) and cites the "
                    f"papers it used.{api}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="pa-chat",
                    height=560,
                    examples=[{"text": q} for q in examples],
                    placeholder="Ask about the papers, or pick an example below.",
                    buttons=[],  # "Copy answer" copies plain text; the built-in buttons would copy markup
                    feedback_options=("Like", "Dislike"),
                    latex_delimiters=[],
                    sanitize_html=True,
                    render_markdown=True,
                    layout="bubble",
                )
                with gr.Row():
                    question = gr.Textbox(
                        show_label=False, placeholder="Ask a question about the papers…", elem_id="pa-question",
                        scale=6, lines=1, max_lines=4, autofocus=True, container=False,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="pa-ask")
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=70, elem_id="pa-stop")
                with gr.Row():
                    copy = gr.Button("Copy answer", size="sm", elem_id="pa-copy")
                    clear = gr.Button("Clear chat", size="sm", elem_id="pa-clear")
                papers = gr.Dropdown(
                    choices=_paper_choices(assistant),
                    value=[],
                    multiselect=True,
                    label="Search only these papers",
                    info="Leave empty to search every paper.",
                    elem_id="pa-papers",
                )
            with gr.Column(scale=2, min_width=320):
                sources = gr.HTML(EMPTY_SOURCES, elem_id="pa-sources", js_on_load=None, padding=True, max_height=760)

        async def respond(
            message: str, chat: list[Message], state: list[dict[str, Any]], paper_ids: list[str] | None
        ) -> AsyncIterator[tuple[Any, Any, Any, Any]]:
            text = (message or "").strip()
            if not text:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            chat, state = list(chat or []), list(state or [])
            standalone = rewrite_followup(text, history_of(state))
            turn = len(state)
            state.append({"question": text, "standalone": standalone, "answer": None, "error": None, "retrieved": None})
            chat += [user_message(text), pending_message(text, standalone)]
            yield chat, "", gr.skip(), state
            streamed = ""
            try:
                with runtime.admission.admitted() as ticket:  # the API's bound on answers in flight, and its clock
                    events = runtime.answer_events(standalone, paper_ids=list(paper_ids or []) or None)
                    async for event in events:
                        if event.sources is not None:  # retrieval is done: show the papers before the model starts
                            retrieved = [p.model_dump(mode="json") for p in event.sources.passages]
                            state[turn] = {**state[turn], "retrieved": retrieved}
                            chat[-1] = pending_message(text, standalone, len(retrieved))
                            yield chat, gr.skip(), sources_html(state, assistant.papers, drop_unsupported), state
                            continue
                        if event.answer is None:
                            streamed += event.text
                            chat[-1] = streaming_message(text, standalone, streamed)
                            yield chat, gr.skip(), gr.skip(), gr.skip()
                            continue
                        ticket.completed = True
                        state[turn] = {**state[turn], "answer": event.answer.model_dump(mode="json")}
                        chat[-1] = answer_message(text, standalone, event.answer, turn, drop_unsupported)
                        yield chat, gr.skip(), sources_html(state, assistant.papers, drop_unsupported), state
            except AssistantError as exc:
                state[turn] = {**state[turn], "error": str(exc)}
                chat[-1] = error_message(exc)
                yield chat, gr.skip(), sources_html(state, assistant.papers, drop_unsupported), state
            except Exception as exc:  # noqa: BLE001 - the chat shows a message, the log the traceback
                traceback.print_exception(exc, file=sys.stderr)
                state[turn] = {**state[turn], "error": "internal error"}
                chat[-1] = error_message(exc)
                yield chat, gr.skip(), sources_html(state, assistant.papers, drop_unsupported), state

        def stopped(
            chat: list[Message], state: list[dict[str, Any]]
        ) -> tuple[list[Message], Any, list[dict[str, Any]]]:
            # A turn stopped after retrieval keeps its papers in Sources, no longer marked as being checked.
            state = list(state or [])
            if state and state[-1].get("retrieved") and not state[-1].get("answer") and not state[-1].get("error"):
                state[-1] = {**state[-1], "stopped": True}
                panel: Any = sources_html(state, assistant.papers, drop_unsupported)
            else:
                panel = gr.skip()
            chat = list(chat or [])
            if chat and chat[-1].get("role") == "assistant":
                content = _message_text(chat[-1])
                if "pa-streaming" in content:
                    content = _WAIT.sub("", content.replace("pa-streaming", "pa-stopped", 1)
                                        .replace('<span class="pa-cursor">▍</span>', ""))
                    chat[-1] = {"role": "assistant",
                                "content": content.removesuffix("</div>") + '<div class="pa-note">Stopped.</div></div>'}
            return chat, panel, state

        def on_like(data: gr.LikeData, chat: list[Message], state: list[dict[str, Any]]) -> None:
            index = data.index if isinstance(data.index, int) else data.index[0]
            feedback.add(feedback_record(data.liked, index, chat, state))
            gr.Info("Thanks, your feedback was saved.")

        def on_example(evt: gr.SelectData) -> str:
            return str(evt.value["text"]) if isinstance(evt.value, dict) else str(evt.value)

        private: dict[str, Any] = {"api_visibility": "private"}
        run = {"fn": respond, "inputs": [question, chatbot, turns, papers], "outputs": [chatbot, question, sources, turns],
               "show_progress": "hidden", "concurrency_limit": None, **private}
        submitted = question.submit(**run)
        clicked = ask.click(**run)
        example = chatbot.example_select(on_example, None, question, **private).then(**run)
        stop.click(stopped, [chatbot, turns], [chatbot, sources, turns], cancels=[submitted, clicked, example],
                   queue=False, **private)
        clear.click(lambda: ([], [], EMPTY_SOURCES, ""), None, [chatbot, turns, sources, question],
                    cancels=[submitted, clicked, example], queue=False, **private)
        chatbot.clear(lambda: ([], EMPTY_SOURCES), None, [turns, sources], cancels=[submitted, clicked, example],
                      queue=False, **private)
        copy.click(None, None, None, js=COPY_JS, **private)
        chatbot.like(on_like, [chatbot, turns], None, queue=False, **private)
    return demo


def _message_text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def mount_ui(app: FastAPI, runtime: Runtime, api_path: str | None = None) -> FastAPI:
    """Mount the chat UI at `/` of `app`; with an API key, the UI asks for it as the password."""
    key = runtime.api_key

    def check(username: str, password: str) -> bool:
        return key is not None and hmac.compare_digest(password.encode(), key.encode())

    return gr.mount_gradio_app(
        app,
        build_ui(runtime, api_path=api_path),
        path="/",
        css=CSS,
        theme=gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS),
        head=HEAD,
        auth=check if key else None,
        auth_message="Enter any user name and the server's API key as the password." if key else None,
        footer_links=["settings"],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        show_error=False,
    )

