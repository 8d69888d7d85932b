import pytest

from llmcli.errors import UsageError
from llmcli.sampling import SamplingConfig, Step


def kinds(config: SamplingConfig) -> list[str]:
    return [s.kind for s in config.steps()]


def test_defaults_apply_only_when_no_truncation_flag_is_given() -> None:
    assert kinds(SamplingConfig.from_options(seed=1)) == ["top_p", "min_p", "temp", "dist"]


def test_top_p_alone_is_nucleus_and_temperature_only() -> None:
    config = SamplingConfig.from_options(top_p=0.9, seed=1)
    assert config.steps() == [Step("top_p", (0.9, 1)), Step("temp", (0.8,)), Step("dist", (1,))]


def test_top_k_alone() -> None:
    assert kinds(SamplingConfig.from_options(top_k=5, temperature=1.0)) == ["top_k", "temp", "dist"]


def test_greedy_and_zero_temperature_are_argmax() -> None:
    assert SamplingConfig.from_options(greedy=True, top_k=5).steps() == [Step("greedy")]
    assert SamplingConfig.from_options(temperature=0).steps() == [Step("greedy")]


def test_repeat_penalty_comes_first() -> None:
    config = SamplingConfig.from_options(greedy=True, repeat_penalty=1.1)
    assert config.steps() == [Step("penalties", (64, 1.1, 0.0, 0.0)), Step("greedy")]


def test_without_seed_each_resolution_draws_fresh_randomness() -> None:
    config = SamplingConfig.from_options()
    seeds = {config.resolved().seed for _ in range(5)}
    assert len(seeds) == 5
    assert SamplingConfig.from_options(seed=7).resolved().seed == 7


@pytest.mark.parametrize(
    "options",
    [
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"temperature": -0.1},
        {"top_k": -1},
        {"min_p": 2.0},
        {"repeat_penalty": 0.0},
        {"max_tokens": 0},
        {"seed": -1},
        {"stop": [""]},
    ],
)
def test_invalid_values_are_usage_errors(options: dict) -> None:
    with pytest.raises(UsageError):
        SamplingConfig.from_options(**options)
