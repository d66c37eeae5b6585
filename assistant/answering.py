"""Question + Passages -> a draft answer citing opaque passage keys, via the chat model.

Prompts come from the packaged prompt files (`prompts/` in the repository, read through
`bundled`) whose variables are checked when loaded. Passages are packed
within a token budget, each under a key ([1], [2], ...) that means something only inside this
prompt; the grounding stage maps keys back to papers and drops any the model invented.
Also validates questions. Does not check claims.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from .backends import ChatModel, ChatPiece, Messages
from .bundled import PROMPTS, folder
from .errors import InputError
from .text import CITATION_MARK, count_tokens, encoding_for, split_sentences
from .types import Passage

# The one refusal phrase, shown whenever the assistant abstains. The model is never offered it: small
# models take the exit even when the answer is in front of them, so abstaining is decided in code
# (weak retrieval evidence, or no claim the cited abstracts support).
REFUSAL = "The papers I have do not answer this question."


def load_prompt(name: str, variables: set[str], where: Traversable | None = None) -> str:
    """Read the prompt file <name>.txt (of the packaged prompts, or of `where`) and check it uses exactly `variables`."""
    path = (where or folder(PROMPTS)) / f"{name}.txt"
    if not path.is_file():
        raise InputError(f"prompt file {path} is missing; restore it from the repository and reinstall")
    text = path.read_text(encoding="utf-8")
    found = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    if found != variables:
        raise InputError(
            f"prompt {path} uses variables {sorted(found)} but the code fills {sorted(variables)}; edit the prompt"
        )
    return text


@dataclass(frozen=True)
class Prompts:
    """The answer prompts, loaded and checked once."""

    system: str
    user: str
    passage: str
    translate: str

    @classmethod
    def load(cls, where: Traversable | None = None) -> Prompts:
        """Load and check every answer prompt (the packaged ones, or those in `where`)."""
        return cls(
            system=load_prompt("answer_system", set(), where),
            user=load_prompt("answer_user", {"passages", "question"}, where),
            passage=load_prompt("passage", {"key", "title", "text"}, where),
            translate=load_prompt("translate_question", {"question"}, where),
        )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_question(question: object) -> str:
    """The question with control characters removed; raises InputError if it is not text or empty."""
    if not isinstance(question, str):
        raise InputError("the question must be text")
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", question)).strip()
    if not text:
        raise InputError("the question is empty; type a question about the papers")
    return text


_COMMAND = re.compile(
    r"^\W*(?:please\s+)?(?:ignore|disregard|forget|override)\b.{0,60}?\b(?:instructions?|rules?|prompts?|above|"
    r"previous|system)\b|^\W*(?:please\s+)?(?:respond|reply|answer|say|output|print|write|return|type)\b.{0,30}?"
    r"\b(?:only|word|exactly)\b",
    re.IGNORECASE,
)


def drop_commands(text: str) -> str:
    """The question without its sentences that instruct the assistant instead of asking ("Respond only
    with the word X.", "Ignore all previous instructions ..."): text in a question is data, and what
    is asked is the rest. A sentence that asks (ends with "?") always stays; so does a question that is
    nothing but commands."""
    sentences = split_sentences(text.replace("\n", " "))
    kept = [s for s in sentences if s.rstrip().endswith("?") or not _COMMAND.search(s)]
    return " ".join(kept) if kept and len(kept) < len(sentences) else text


def shorten_question(text: str, max_tokens: int) -> tuple[str, bool]:
    """(question, shortened?): a question over `max_tokens` keeps its end: the last sentence that asks
    something (and the sentence before it when that one is very short) and what follows it, since a
    long message (pasted notes, a preamble) ends with the question itself."""
    if count_tokens(text) <= max_tokens:
        return text, False
    sentences = split_sentences(text.replace("\n", " "))
    asks = max((i for i, s in enumerate(sentences) if s.rstrip().endswith("?")), default=len(sentences) - 1)
    kept: list[str] = []
    used = 0
    for i in range(len(sentences) - 1, -1, -1):  # from the end back to the last question, plus its lead-in if short
        if i < asks and (i < asks - 1 or used >= 16):
            break
        cost = count_tokens(sentences[i]) + 1
        if used + cost > max_tokens:
            break
        kept.insert(0, sentences[i])
        used += cost
    if not kept:  # one endless sentence: its last max_tokens tokens
        enc = encoding_for("cl100k_base")
        return enc.decode(enc.encode(text, disallowed_special=())[-max_tokens:]).strip(), True
    return " ".join(kept), True


def pack(passages: list[Passage], budget_tokens: int) -> list[Passage]:
    """The leading passages that fit the token budget; the first is cut to fit if it alone is too long."""
    packed: list[Passage] = []
    used = 0
    for passage in passages:
        cost = count_tokens(passage.title) + count_tokens(passage.text) + 8
        if used + cost > budget_tokens:
            if not packed and budget_tokens > count_tokens(passage.title) + 16:
                room = budget_tokens - count_tokens(passage.title) - 8
                enc = encoding_for("cl100k_base")
                text = enc.decode(enc.encode(passage.text, disallowed_special=())[:room])
                packed.append(passage.model_copy(update={"text": text}))
            break
        packed.append(passage)
        used += cost
    return packed


def build_messages(prompts: Prompts, question: str, passages: list[Passage]) -> Messages:
    """Chat messages: a fixed system prompt (cached by the model), then passages and question."""
    blocks = [
        prompts.passage.format(key=i, title=p.title, text=CITATION_MARK.sub(r"(\1)", p.text)).strip()
        for i, p in enumerate(passages, start=1)
    ]
    user = prompts.user.format(passages="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": prompts.system}, {"role": "user", "content": user}]


def stream_draft(
    model: ChatModel, prompts: Prompts, question: str, passages: list[Passage], max_tokens: int
) -> Iterator[ChatPiece]:
    """Stream the model's draft for `question` over `passages` (keys are 1-based positions)."""
    yield from model.stream(build_messages(prompts, question, passages), max_tokens)


def translate(model: ChatModel, prompts: Prompts, question: str, max_tokens: int = 96) -> str:
    """The question in English, by the chat model; the question itself if the reply is empty."""
    messages: Messages = [{"role": "user", "content": prompts.translate.format(question=question)}]
    reply = "".join(p.text for p in model.stream(messages, max_tokens)).strip()
    reply = re.sub(r"^(english( question)?|question)\s*:\s*", "", reply, flags=re.IGNORECASE).strip().strip('"')
    return reply.splitlines()[0].strip() if reply else question
