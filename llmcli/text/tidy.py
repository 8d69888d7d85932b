"""Strip the chatter that small instruct models wrap around a translation or a summary.

Models open with a preamble ("Here is the translation:", "Voici la traduction :", "以下是翻译："), put a
label before the answer ("Translation: …"), wrap the whole answer in quotes or a ``` fence, and close with
notes or offers ("(Note: …)", "I hope this helps!"). Removal is conservative: only the first line(s) can
be a preamble and only the last paragraph(s) a note, and a translation keeps whatever the source itself
has at that place (a source that opens with "Here is…:" or ends with "Note: …" is translated, not tidied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LANGUAGES = (
    r"(?:english|german|french|spanish|italian|portuguese|russian|polish|dutch|chinese|japanese|korean"
    r"|simplified\s+chinese|traditional\s+chinese|deutsch|englisch|französisch|spanisch|anglais|allemand"
    r"|français|espagnol|inglés|alemán|francés|español|italiano|português|русский|polski|nederlands"
    r"|(?:简体|繁體|繁体)?中文|英文|英语|英語|德语|法语|日语|日本語|한국어|영어)"
)
_TRANSLATION_WORDS = re.compile(
    r"translat|übersetz|tradu|tłumacz|перев[оеё]д|翻[译譯訳]|译文|訳文|語訳|번역", re.I
)
_SUMMARY_WORDS = re.compile(
    r"summar|zusammenfass|résumé|\bresumen\b|\bresumo\b|riassunto|резюме|摘要|总结|總結|要約|概要|요약|tl;?\s?dr",
    re.I,
)
# A line that is nothing but a label; it counts only with a colon or as a heading or bold text.
_TRANSLATION_LABEL = re.compile(
    rf"(?:(?:the\s+)?(?:{_LANGUAGES}\s+)?(?:translation|translated\s+text|übersetzung|traduction|traducción"
    rf"|tradução|traduzione|tłumaczenie|перевод|翻译|翻譯|翻訳|译文|訳文|번역)(?:\s*\(\s*{_LANGUAGES}\s*\))?"
    rf"|{_LANGUAGES}(?:\s+(?:translation|version|text))?|(?:in|auf|en)\s+{_LANGUAGES})\s*[:：]?",
    re.I,
)
_SUMMARY_LABEL = re.compile(
    r"(?:(?:short|brief|concise|executive|final)\s+)?(?:summary|zusammenfassung|résumé|resumen|resumo"
    r"|riassunto|резюме|摘要|总结|總結|要約|概要|요약|tl;?\s?dr)(?:\s+of\s+(?:the\s+)?[\w-]+(?:\s+[\w-]+){0,2})?"
    r"\s*[:：]?",
    re.I,
)
_FILLER = re.compile(
    r"(?:sure|certainly|of\s+course|okay|ok|absolutely|alright|no\s+problem|gladly|claro|por\s+supuesto"
    r"|bien\s+sûr|d'accord|natürlich|gerne|klar|当然|好的|もちろん|물론)"
    r"(?:[!,.]*\s*(?:here\s+(?:you\s+go|it\s+is)|voici|voilà|hier\s+bitte))?\s*[!.:：。！]*",
    re.I,
)
_OPENER = re.compile(
    r"(?:(?:sure|certainly|of\s+course|okay|ok|absolutely|alright|great)[!,.]*\s+)?"
    r"(?:here(?:'s|’s|\s+is|\s+are|\s+you\s+go)|below\s+(?:is|you)|(?:the\s+)?following\s+is|voici|voilà"
    r"|ci-dessous|hier\s+(?:ist|sind|die|der|das)|nachfolgend|im\s+folgenden|aquí\s+(?:está|tienes|tiene|va)"
    r"|a\s+continuación|ecco|eis|segue|aqui\s+está|вот|ниже|以下|下面|这是|這是|好的|当然|次は|これは|다음은|여기)",
    re.I,
)
_TASK_OPENER = re.compile(
    r"the\s+(?:[\w-]+\s+){0,2}?(?:translation|summary)\s+(?:of|for|in|into|from|is|would\s+be)\b", re.I
)
_INLINE = re.compile(r"(?P<head>[^:：\n]{1,200}?)\s*[:：][ \t]*(?P<rest>\S.*)")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"[^\W_]+")
_DECORATION_HEAD = re.compile(r"^[\s#>*_]+")
_DECORATION_TAIL = re.compile(r"[\s*_]+$")
_DECORATION_COLON = re.compile(r"[*_]+(?=\s*[:：]$)")

_NOTE = re.compile(
    r"(?:[(\[]\s*)?(?:notes?|n\.\s?b\.|nb|translator'?s?\s+notes?|translation\s+notes?|anmerkung(?:en)?"
    r"|hinweis|remarque|nota|notas|note\s+du\s+traducteur|nota\s+del\s+traductor|примечание|注释|注釋|注意|注"
    r"|备注|備註|備考|참고)\s*[:：,，(—–-]"
    r"|\((?:notes?|nota|remarque|anmerkung)\b"
    r"|translator'?s?\s+notes?\b",
    re.I,
)
_OFFER = re.compile(
    r"(?:i\s+hope\s+(?:this|that|it|the)\b|hope\s+(?:this|that)\s+helps|let\s+me\s+know\b|please\s+let\s+me\s+know"
    r"|feel\s+free\b|if\s+you\s+(?:have|need|would\s+like|want)\b|would\s+you\s+like\b|do\s+you\s+(?:want|need)\b"
    r"|is\s+there\s+anything\s+else|i\s+can\s+also\b|i(?:'d|\s+would)\s+be\s+happy\s+to|happy\s+to\s+help"
    r"|ich\s+hoffe|j'espère|n'hésitez\s+pas|espero\s+que|no\s+dudes|希望(?:这|這|以上|对|對)|如果(?:您|你)?(?:有|需要)"
    r"|如有|何か|ご不明)",
    re.I,
)
# An offer inside a translation must be about the assistant's own work: "If you have any questions,
# call us." ends many a letter.
_OFFER_TOPIC = re.compile(
    rf"{_TRANSLATION_WORDS.pattern}|{_SUMMARY_WORDS.pattern}|\b(?:this|that|it)\s+helps|assist|adjust"
    r"|anything\s+else|other\s+(?:text|sentence|document|phrase)s?",
    re.I,
)
_TRANSLATION_META = re.compile(
    r"(?:in\s+this\s+(?:sentence|translation|text|version)|this\s+translation|the\s+(?:above\s+)?translation"
    r"\s+(?:above|keeps|preserves|uses|is|maintains)|i\s+(?:have\s+|'ve\s+)?(?:translated|kept|rendered|used"
    r"|chose|preserved|maintained|left))\b",
    re.I,
)
_TRANSLATION_META_TOPIC = re.compile(rf"{_TRANSLATION_WORDS.pattern}|\bmeans\b|\bbedeutet\b", re.I)
_SUMMARY_META = re.compile(
    r"(?:this\s+summary|the\s+(?:above\s+)?summary\s+(?:above|covers|captures|highlights|focuses)"
    r"|i\s+(?:have\s+|'ve\s+)?(?:summarized|summarised|condensed|kept|focused|omitted|left\s+out))\b",
    re.I,
)
# Wider than what gets stripped: a source paragraph like this makes the matching output paragraph content.
_SOURCE_TAIL = re.compile(
    r"(?:warning|caution|important|tip|achtung|beachten|bitte\s+beachten|attention|avertissement|aviso"
    r"|advertencia|importante|警告|提示|提醒|ご注意)\b",
    re.I,
)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_RULE = re.compile(r"[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*")
_FENCE = re.compile(r"```[\w+.-]*[ \t]*\n(?P<body>.*?)\n[ \t]*```", re.S)
_FENCE_LINE = re.compile(r"^[ \t]*```", re.M)
_QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "“": "”",
    "„": "“”",
    "«": "»",
    "»": "«",
    "‘": "’",
    "‹": "›",
    "「": "」",
    "『": "』",
}
_QUOTES = frozenset("".join(_QUOTE_PAIRS) + "".join(_QUOTE_PAIRS.values()))
# "The translation of "I love programming" into German is "Ich liebe Programmieren"." as the whole answer.
_TRANSLATION_SENTENCE = re.compile(
    r"(?:the\s+)?(?:[\w-]+\s+)?translation\s+of\s+.+?\s+(?:is|would\s+be|reads)\s*:?\s*"
    r"(?P<open>[\"“„«])(?P<body>[^\"“”„«»\n]+)(?P<close>[\"”“»])\s*\.?",
    re.I,
)


@dataclass(frozen=True)
class _Task:
    words: re.Pattern[str]
    label: re.Pattern[str]
    meta: re.Pattern[str]
    meta_topic: re.Pattern[str]
    # Whether the output renders a source text (a translation) rather than restating it (a summary). Then a
    # colon line can go as a preamble without an opener ("Here is…") or a label, since the source is there to
    # compare with, and an offer must be about the assistant's work to go, since the source's own closing
    # lines may hold one ("If you have any questions, call us.").
    renders_source: bool


_TRANSLATION = _Task(
    _TRANSLATION_WORDS, _TRANSLATION_LABEL, _TRANSLATION_META, _TRANSLATION_META_TOPIC, renders_source=True
)
_SUMMARY = _Task(_SUMMARY_WORDS, _SUMMARY_LABEL, _SUMMARY_META, _SUMMARY_WORDS, renders_source=False)


@dataclass(frozen=True)
class _Source:
    """What the source looks like at the places where chatter would be cut."""

    first_line: str
    last_paragraph: str
    last_line: str
    lines: int
    paragraphs: int
    fenced: bool
    quoted: bool
    starts_with_rule: bool
    ends_with_rule: bool
    mentions_translation: bool

    @classmethod
    def of(cls, source: str) -> _Source:
        text = source.replace("\r\n", "\n").strip()
        lines = _lines(text) or [""]
        paragraphs = _PARAGRAPH_BREAK.split(text)
        return cls(
            first_line=lines[0],
            last_paragraph=paragraphs[-1],
            last_line=lines[-1],
            lines=len(lines),
            paragraphs=len(paragraphs),
            fenced="```" in text,
            quoted=len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES,
            starts_with_rule=_RULE.fullmatch(lines[0]) is not None,
            ends_with_rule=_RULE.fullmatch(lines[-1]) is not None,
            mentions_translation=_TRANSLATION_WORDS.search(text) is not None,
        )

    def keeps_head(self, text: str) -> bool:
        """Whether the source opens like a preamble, so the output's first line is its translation."""
        if any(_is_preamble(self.first_line, task, strict=True) for task in (_TRANSLATION, _SUMMARY)):
            return True
        return self.first_line.endswith((":", "：")) and len(_lines(text)) <= self.lines

    def keeps_label(self) -> bool:
        """Whether the source's first line also starts with a short "label:"."""
        head = re.split(r"[:：]", self.first_line, maxsplit=1)
        return len(head) == 2 and _word_count(head[0]) <= 6

    def keeps_tail(self, *, count: int, whole_paragraph: bool) -> bool:
        """Whether the output's last paragraph (or line) corresponds to one the source has."""
        if count <= (self.paragraphs if whole_paragraph else self.lines):
            return True
        return _looks_like_tail(self.last_paragraph if whole_paragraph else self.last_line)


def tidy_translation(output: str, source: str) -> str:
    """The translation alone: strip preambles, labels, wrapping quotes or fences, and trailing notes the
    source does not have."""
    return _tidy(output, _TRANSLATION, _Source.of(source))


def tidy_summary(output: str) -> str:
    """The summary alone: strip preambles such as "Here is a summary:" and trailing offers or notes."""
    return _tidy(output, _SUMMARY, None)


def _tidy(output: str, task: _Task, source: _Source | None) -> str:
    text = output.replace("\r\n", "\n").strip()
    # Every step only removes text, so repeating until nothing changes ends, and makes tidying idempotent.
    while True:
        tidied = _tidy_once(text, task, source)
        if tidied == text:
            return text
        text = tidied


def _tidy_once(text: str, task: _Task, source: _Source | None) -> str:
    text = _strip_head(text, task, source)
    text = _strip_tail(text, task, source)
    if source is None or not source.fenced:
        text = _unwrap_fence(text)
    if source is None or not source.quoted:
        text = _unwrap_quotes(text)
    if source is not None and not source.mentions_translation:
        sentence = _TRANSLATION_SENTENCE.fullmatch(text)
        if sentence and sentence["close"] in _QUOTE_PAIRS[sentence["open"]]:
            text = sentence["body"].strip()
    return text


def _strip_head(text: str, task: _Task, source: _Source | None) -> str:
    first, _, remainder = text.partition("\n")
    own_line = bool(remainder.strip()) and _is_preamble(first, task, strict=not task.renders_source)
    if own_line and (source is None or not source.keeps_head(text)):
        keep_rule = source is not None and source.starts_with_rule
        return _drop_rule(remainder.strip(), at_start=True, keep=keep_rule)
    inline = _INLINE.fullmatch(first)
    if (
        inline
        and _is_preamble(inline["head"] + ":", task, strict=True)
        and (source is None or not source.keeps_label())
    ):
        return (inline["rest"] + "\n" + remainder).strip()
    return text


def _strip_tail(text: str, task: _Task, source: _Source | None) -> str:
    breaks = list(_PARAGRAPH_BREAK.finditer(text))
    last = text[breaks[-1].end() :] if breaks else text
    if breaks and _is_tail(last, task):
        head = text[: breaks[-1].start()]
        kept = source is not None and source.keeps_tail(count=len(breaks) + 1, whole_paragraph=True)
        if not kept and _fences_balanced(head):
            return _drop_rule(head, at_start=False, keep=source is not None and source.ends_with_rule)
    # A note on the line right under the answer, without a blank line between them.
    head, _, last_line = text.rpartition("\n")
    if "\n" not in last or not _is_tail(last_line, task) or not _fences_balanced(head):
        return text
    if source is not None and source.keeps_tail(count=len(_lines(text)), whole_paragraph=False):
        return text
    return head.strip()


def _is_preamble(line: str, task: _Task, *, strict: bool) -> bool:
    """Whether a line is a preamble to the answer rather than part of it."""
    text, decorated = _undecorate(line)
    if not text:
        return False
    if _FILLER.fullmatch(text):
        return True
    ends_with_colon = text.endswith((":", "："))
    if task.label.fullmatch(text):
        return ends_with_colon or decorated
    if not task.words.search(text):
        return False
    words = _word_count(text)
    opener = _OPENER.match(text) is not None
    if ends_with_colon:
        if opener or _TASK_OPENER.match(text):
            return words <= 25
        return not strict and words <= 15
    return opener and words <= 15 and text.endswith((".", "!", "。", "！"))


def _is_tail(paragraph: str, task: _Task) -> bool:
    """Whether a closing paragraph is a note, an offer or an explanation rather than part of the answer."""
    text, _ = _undecorate(paragraph)
    if not text:
        return False
    if _NOTE.match(text):
        return True
    if _OFFER.match(text) and (not task.renders_source or _OFFER_TOPIC.search(text)):
        return True
    if task.meta.match(text) and task.meta_topic.search(text):
        return True
    return text.startswith("(") and text.endswith(")") and task.words.search(text) is not None


def _looks_like_tail(paragraph: str) -> bool:
    text, _ = _undecorate(paragraph)
    return bool(
        _NOTE.match(text)
        or _OFFER.match(text)
        or _SOURCE_TAIL.match(text)
        or (text.startswith("(") and text.endswith(")"))
    )


def _unwrap_fence(text: str) -> str:
    fence = _FENCE.fullmatch(text)
    if fence and "```" not in fence["body"] and fence["body"].strip():
        return fence["body"].strip()
    return text


def _unwrap_quotes(text: str) -> str:
    if len(text) < 3 or text[0] not in _QUOTE_PAIRS or text[-1] not in _QUOTE_PAIRS[text[0]]:
        return text
    inner = text[1:-1]
    # A quote inside means the marks belong to the text ("Hi," she said, "bye.").
    if any(mark in inner for mark in text[0] + _QUOTE_PAIRS[text[0]]) or not inner.strip():
        return text
    return inner.strip()


def _drop_rule(text: str, *, at_start: bool, keep: bool) -> str:
    """Drop the horizontal rule models put between their chatter and the answer."""
    if keep:
        return text.strip()
    lines = text.strip().split("\n")
    edge = 0 if at_start else -1
    if len(lines) > 1 and _RULE.fullmatch(lines[edge]):
        del lines[edge]
    return "\n".join(lines).strip()


def _undecorate(line: str) -> tuple[str, bool]:
    """The line without Markdown heading, quote, bold or italic marks, and whether it had any."""
    stripped = line.strip()
    text = _DECORATION_TAIL.sub("", _DECORATION_HEAD.sub("", stripped))
    text = _DECORATION_COLON.sub("", text)
    return text, len(text) < len(stripped)


def _word_count(text: str) -> int:
    """Words, with two CJK characters counting as one word."""
    cjk = len(_CJK.findall(text))
    return len(_WORD.findall(_CJK.sub(" ", text))) + cjk // 2


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _fences_balanced(text: str) -> bool:
    return len(_FENCE_LINE.findall(text)) % 2 == 0
