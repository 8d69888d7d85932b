import json
from pathlib import Path
from typing import Any

import pytest

from llmcli.text.tidy import tidy_summary, tidy_translation

FIXTURES = Path(__file__).parent / "data" / "model_outputs.json"
RECORDS: list[dict[str, Any]] = json.loads(FIXTURES.read_text(encoding="utf-8"))
HAND_WRITTEN = "typical, written by hand"


def tidy(record: dict[str, Any], text: str) -> str:
    if record["task"] == "translation":
        return tidy_translation(text, record["source"])
    return tidy_summary(text)


def record_id(record: dict[str, Any]) -> str:
    kind = "hand" if record["origin"] == HAND_WRITTEN else "real"
    return f"{record['task']}-{kind}-{record['output'][:30]!r}"


def test_fixtures_are_well_formed() -> None:
    assert len(RECORDS) >= 40
    for record in RECORDS:
        assert set(record) == {"model", "task", "source", "output", "expected", "origin"}
        assert record["task"] in {"translation", "summary"}
        assert record["origin"].strip()
    assert sum(record["origin"] != HAND_WRITTEN for record in RECORDS) >= 20


@pytest.mark.parametrize("record", RECORDS, ids=record_id)
def test_fixture(record: dict[str, Any]) -> None:
    assert tidy(record, record["output"]) == record["expected"]


@pytest.mark.parametrize("record", RECORDS, ids=record_id)
def test_idempotent(record: dict[str, Any]) -> None:
    once = tidy(record, record["output"])
    assert tidy(record, once) == once


@pytest.mark.parametrize(
    ("output", "source"),
    [
        ("Hallo Welt", "Hello world"),
        ("Der Bericht ist fertig.\n\nEr hat zehn Seiten.", "The report is done.\n\nIt has ten pages."),
        ("Ein Übersetzungsbüro in Berlin.", "A translation agency in Berlin."),
        ("", "Hello"),
    ],
)
def test_translation_without_chatter_is_unchanged(output: str, source: str) -> None:
    assert tidy_translation(output, source) == output


def test_summary_without_chatter_is_unchanged() -> None:
    summary = "The council approved the budget.\n\nSchools get 4% more."
    assert tidy_summary(summary) == summary


@pytest.mark.parametrize(
    ("output", "source"),
    [
        pytest.param(
            "Übersetzungstipps:\n- zweimal lesen\n- laut lesen",
            "Translation tips:\n- read twice\n- read aloud",
            id="line-ending-with-colon-like-the-source",
        ),
        pytest.param(
            "Here is the translation of the letter:\n\nDear Anna, thanks for everything.",
            "Hier ist die Übersetzung des Briefes:\n\nLiebe Anna, danke für alles.",
            id="opening-like-a-preamble-like-the-source",
        ),
        pytest.param(
            "Übersetzung: das Übertragen eines Textes in eine andere Sprache.",
            "Translation: the act of rendering text in another language.",
            id="label-like-the-source",
        ),
        pytest.param(
            "Gut mischen.\n\nHinweis: kaltes Wasser verwenden.",
            "Mix well.\n\nNote: use cold water.",
            id="trailing-note-like-the-source",
        ),
        pytest.param(
            "Danke für Ihre Bestellung.\n\nLet me know if the parcel does not arrive.",
            "Danke für Ihre Bestellung. Sagen Sie mir, wenn das Paket nicht ankommt.",
            id="closing-line-of-a-letter-is-not-an-offer",
        ),
        pytest.param(
            "Führen Sie Folgendes aus:\n\n```\nmake\n\nNote: needs gcc\n```",
            "Run the following:\n\n```\nmake\n\nNote: needs gcc\n```",
            id="note-inside-a-code-block",
        ),
    ],
)
def test_translation_keeps_what_the_source_has(output: str, source: str) -> None:
    assert tidy_translation(output, source) == output


def test_preamble_before_a_colon_line_is_still_removed() -> None:
    source = "Translation tips:\n- read twice"
    output = "Here is the translation:\nÜbersetzungstipps:\n- zweimal lesen"
    assert tidy_translation(output, source) == "Übersetzungstipps:\n- zweimal lesen"


@pytest.mark.parametrize(
    "output", ["“Guten Morgen.”", '"Guten Morgen."', "«Guten Morgen.»", "「Guten Morgen.」"]
)
def test_wrapping_quotes_are_removed(output: str) -> None:
    assert tidy_translation(output, "Good morning.") == "Guten Morgen."


def test_wrapping_quotes_are_kept_for_a_quoted_source() -> None:
    assert tidy_translation('"Guten Morgen."', '"Good morning."') == '"Guten Morgen."'


def test_quotes_that_belong_to_the_text_are_kept() -> None:
    output = '"Hallo", sagte sie, "bis morgen."'
    assert tidy_translation(output, '"Hello," she said, "see you tomorrow."') == output
    assert tidy_translation(output, "Hello, she said, see you tomorrow.") == output


def test_fence_is_removed_only_when_the_source_has_none() -> None:
    assert tidy_translation("```\nHallo Welt\n```", "Hello world") == "Hallo Welt"
    fenced = "```\nprint('Hallo')\n```"
    assert tidy_translation(fenced, "```\nprint('Hello')\n```") == fenced


def test_trailing_note_and_offer_are_removed() -> None:
    output = "Gut mischen.\n\nNote: I kept the imperative.\n\nI hope this translation helps!"
    assert tidy_translation(output, "Mix well.") == "Gut mischen."


def test_note_on_the_line_under_the_answer_is_removed() -> None:
    assert tidy_translation("Gut mischen.\n(Note: informal register)", "Mix well.") == "Gut mischen."


def test_summary_lead_in_is_content() -> None:
    for summary in ("In summary, prices rose.", "In summary:\nprices rose.", "This text discusses prices."):
        assert tidy_summary(summary) == summary


def test_summary_colon_line_needs_an_opener() -> None:
    summary = "The report's summary table lists three risks:\n- costs\n- delays"
    assert tidy_summary(summary) == summary
    assert tidy_summary("Here is the summary:\n- costs\n- delays") == "- costs\n- delays"


def test_nested_chatter_is_removed_in_one_call() -> None:
    output = "Sure!\nHere is the translation:\n\n```\n„Hallo“\n```\n\nNote: informal.\n\nHope this helps!"
    assert tidy_translation(output, "Hello") == "Hallo"


def test_a_lone_preamble_is_returned_as_is() -> None:
    assert tidy_translation("Here is the translation:", "Hello") == "Here is the translation:"
    assert tidy_summary("  Here is a summary:  ") == "Here is a summary:"


def test_windows_line_endings() -> None:
    assert tidy_translation("Here is the translation:\r\n\r\nHallo\r\n", "Hello") == "Hallo"
