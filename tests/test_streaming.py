from llmcli.engine.streaming import StopMatcher, TextAssembler


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


def test_stop_string_inside_one_piece() -> None:
    assert feed_all(StopMatcher(["END"]), ["abc END def"]) == ("abc ", True)


def test_stop_string_split_across_pieces() -> None:
    assert feed_all(StopMatcher(["</s>"]), ["hello <", "/", "s", "> more"]) == ("hello ", True)


def test_holds_back_only_a_possible_stop_prefix() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abcST") == ("abc", False)  # "ST" could still become STOP
    assert matcher.feed("x") == ("STx", False)  # it did not
    assert matcher.flush() == ""


def test_partial_stop_released_at_the_end() -> None:
    assert feed_all(StopMatcher(["STOP"]), ["the ST"]) == ("the ST", False)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopMatcher(["bb", "a"]), ["xxbb a"]) == ("xx", True)


def test_no_stops_passes_everything() -> None:
    assert StopMatcher([]).feed("anything") == ("anything", False)


def test_utf8_split_across_tokens_is_reassembled() -> None:
    text = TextAssembler()
    parts = [text.feed(b) for b in (b"\xe4", b"\xbd", b"\xa0", b"!")]
    assert [p for p, _ in parts] == ["", "", "你", "!"]
    assert text.finish() == ""


def test_incomplete_utf8_at_the_end_becomes_replacement() -> None:
    text = TextAssembler()
    assert text.feed(b"ok\xe4\xbd") == ("ok", False)
    assert text.finish() == "\ufffd"


def test_stop_string_made_of_multibyte_characters() -> None:
    text = TextAssembler(["。"])
    out = [text.feed(b) for b in ("好".encode(), b"\xe3", b"\x80", b"\x82")]
    assert out == [("好", False), ("", False), ("", False), ("", True)]
