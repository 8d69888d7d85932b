"""Chat templates: real templates from popular models, the fallbacks, and the sandbox."""

from __future__ import annotations

import struct
from datetime import datetime
from pathlib import Path

import pytest

from llmcli.chat.templates import PLAIN, PLAIN_STOP, ChatTemplate, TemplateError, pick_template

SHARED = Path(__file__).resolve().parents[2] / "shared"
TEMPLATES = SHARED / "templates"
PHI3_GGUF = SHARED / "models" / "vocab" / "ggml-vocab-phi-3.gguf"

CONVERSATION = [
    {"role": "system", "content": "You are a terse pirate."},
    {"role": "user", "content": "Where is the treasure?"},
    {"role": "assistant", "content": "Under the palm tree."},
    {"role": "user", "content": "Which palm tree?"},
]


def gguf_chat_template(path: Path) -> str:
    """`tokenizer.chat_template` from a GGUF header (gguf.GGUFReader takes a second on a vocab file)."""
    data = path.read_bytes()
    pos = 24

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n : pos].decode()

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def skip(vtype: int) -> None:
        nonlocal pos
        if vtype == 8:
            string()
        elif vtype == 9:
            etype, count = take("I"), take("Q")
            if etype in scalar:
                pos += count * struct.calcsize(scalar[etype])
            else:
                for _ in range(count):
                    skip(etype)
        else:
            take(scalar[vtype])

    assert data[:4] == b"GGUF"
    (n_kv,) = struct.unpack_from("<Q", data, 16)
    for _ in range(n_kv):
        key, vtype = string(), take("I")
        if key == "tokenizer.chat_template":
            return string()
        skip(vtype)
    raise AssertionError(f"{path} has no chat template")


# name -> (what the prompt must end with, whether the system prompt is folded into the first user turn)
REAL = {
    "HuggingFaceTB-SmolLM3-3B": ("<|im_start|>assistant\n", False),
    "Qwen-Qwen2.5-7B-Instruct": ("<|im_start|>assistant\n", False),
    "google-gemma-2-2b-it": ("<start_of_turn>model\n", True),
    "meta-llama-Llama-3.2-3B-Instruct": ("<|start_header_id|>assistant<|end_header_id|>\n\n", False),
    "microsoft-Phi-3.5-mini-instruct": ("<|assistant|>\n", False),
    "mistralai-Mistral-Nemo-Instruct-2407": ("[/INST]", False),  # no assistant header: the model just answers
    "phi-3.gguf": ("<|assistant|>\n", True),  # the GGUF's template silently drops system messages
    # Reasoning models, rendered with their templates' defaults:
    "Qwen-Qwen3-0.6B": ("<|im_start|>assistant\n", False),
    "Qwen3.5-4B": ("<|im_start|>assistant\n<think>\n", False),  # thinking on: the answer starts inside it
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": ("<｜Assistant｜><think>\n</think>", False),
    "google-gemma-4-31B-it": ("<|turn>model\n<|channel>thought\n<channel|>", False),  # an empty thought
    "openai-gpt-oss-120b": ("<|start|>assistant", False),  # the model names its channel itself
}


def real_template(name: str) -> str:
    path = PHI3_GGUF if name == "phi-3.gguf" else TEMPLATES / f"{name}.jinja"
    if not path.is_file():
        pytest.skip(f"shared template missing: {path}")
    return gguf_chat_template(path) if path.suffix == ".gguf" else path.read_text()


def test_every_shared_template_is_covered() -> None:
    if not TEMPLATES.is_dir():
        pytest.skip("no shared templates")
    assert {p.stem for p in TEMPLATES.glob("*.jinja")} <= REAL.keys()


@pytest.mark.parametrize("name", REAL)
def test_real_template(name: str) -> None:
    opener, folded = REAL[name]
    template = ChatTemplate(real_template(name), bos_token="<s>", eos_token="</s>")
    text = template.render(CONVERSATION)

    assert text.endswith(opener)
    assert text == template.render(CONVERSATION)  # deterministic (dates change only at midnight)
    positions = [text.index(m["content"]) for m in CONVERSATION[1:]]
    assert positions == sorted(positions)
    system = text.index("You are a terse pirate.")
    if folded:
        assert text.count("You are a terse pirate.") == 1
        assert system < positions[0] and "You are a terse pirate.\n\nWhere is the treasure?" in text
    if "bos_token" in template.source:
        assert text.startswith("<s>")
    assert not text.endswith(opener + opener)

    # without the generation prompt the conversation is still all there
    closed = template.render(CONVERSATION, add_generation_prompt=False)
    assert "Which palm tree?" in closed


def test_llama_inserts_todays_date() -> None:
    before = datetime.now().strftime("%d %b %Y")
    text = ChatTemplate(real_template("meta-llama-Llama-3.2-3B-Instruct")).render(CONVERSATION)
    after = datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {before}\n" in text or f"Today Date: {after}\n" in text
    assert "26 Jul 2024" not in text  # the template's fallback when strftime_now is missing


def test_smollm3_system_switches_reasoning_off() -> None:
    messages = [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Hi"}]
    text = ChatTemplate(real_template("HuggingFaceTB-SmolLM3-3B")).render(messages)
    assert "Reasoning Mode: /no_think" in text and "Be brief." in text
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n")


def test_gemma_without_system_and_system_only() -> None:
    gemma = ChatTemplate(real_template("google-gemma-2-2b-it"))
    assert gemma.render([{"role": "user", "content": "Hi"}]) == (
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    )
    assert gemma.render([{"role": "system", "content": "Rules."}]) == (
        "<start_of_turn>user\nRules.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_plain_fallback_without_a_tokenizer() -> None:
    for missing in (None, "", "  \n"):
        template = pick_template(missing, bos_token="<s>")
        assert (template.origin, template.label, template.source) == ("fallback", "fallback", PLAIN)
        assert template.bos_token == "<s>" and template.stop == PLAIN_STOP
    text = pick_template(None).render([*CONVERSATION[:3], {"role": "user", "content": " Which one? "}])
    assert text == (
        "You are a terse pirate.\n\nUser: Where is the treasure?\n\nAssistant: Under the palm tree.\n\n"
        "User: Which one?\n\nAssistant:"
    )
    assert "<|" not in text and "\nUser:" in PLAIN_STOP


def test_override_wins_then_gguf() -> None:
    picked = pick_template("{{ 'gguf' }}", "{{ 'override' }}", eos_token="</s>")
    assert (picked.origin, picked.render([]), picked.eos_token) == ("registry", "override", "</s>")
    picked = pick_template("{{ 'gguf' }}", None)
    assert (picked.origin, picked.render([])) == ("gguf", "gguf")


def test_loop_controls_and_generation_tag() -> None:
    source = (
        "{% for m in messages %}{% if m.role == 'user' and loop.first %}{% continue %}{% endif %}"
        "{% if m.role == 'user' %}{% break %}{% endif %}"
        "{% generation %}{{ m.content }};{% endgeneration %}{% endfor %}"
    )
    assert ChatTemplate(source).render(CONVERSATION[1:]) == "Under the palm tree.;"


def test_tojson_like_transformers() -> None:
    source = "{{ {'b': 'é<', 'a': [1]} | tojson }}|{{ {'k': 1} | tojson(indent=2) }}"
    assert ChatTemplate(source).render([]) == '{"b": "é<", "a": [1]}|{\n  "k": 1\n}'


def test_globals() -> None:
    source = (
        "{{ bos_token }}{{ tools is none }}{{ documents is none }}{{ strftime_now('%Y') }}{{ eos_token }}"
    )
    year = str(datetime.now().year)
    assert ChatTemplate(source, "<s>", "</s>").render([]) == f"<s>TrueTrue{year}</s>"


def test_no_tools_is_none_that_loops_zero_times() -> None:
    source = (
        "{{ tools is none }} {{ tools is not none }} {{ tools == none }} {{ tools is defined }} "
        "{{ tools | tojson }} {{ tools | length }} {{ tools }} {% if tools %}tools{% endif %}"
        "{% for tool in tools %}{{ tool }}{% else %}empty{% endfor %}"
    )
    assert ChatTemplate(source).render([]) == "True False True True null 0 None empty"


# Tool-use templates, cut down from the real ones around the parts that fail without tools.
# NousResearch Hermes 2 Pro / Hermes 3, the tool_use variant:
HERMES_TOOL_USE = """{{- bos_token }}
{{- '<|im_start|>system
' }}
{{- "You are a function calling AI model. Here are the available tools: <tools> " }}
{%- for tool in tools %}
    {%- if tool.function is defined %}
        {%- set tool = tool.function %}
    {%- endif %}
    {{- '{"type": "function", "function": ' }}{{- tool|tojson }}{{- '}' }}
{%- endfor %}
{{- " </tools>" }}
{{- '<|im_end|>
' }}
{%- for message in messages %}
    {{- '<|im_start|>' + message.role + '
' + message.content + '<|im_end|>' + '
' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant
' }}
{%- endif %}
"""
# CohereForAI c4ai-command-r-plus, the tool_use variant:
COMMAND_R_TOOL_USE = """{%- macro new_tool_parser(tools) %}
{%- for tool in tools %}
  {%- if tool.function is defined %}
    {%- set tool = tool.function %}
  {%- endif %}
  {{- '```python\ndef ' + tool.name + '(...)\n```' }}
{%- endfor %}
{%- endmacro %}
{{- bos_token }}
{{- '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>## Available Tools\n' }}
{%- set ns = namespace(new_tools=true) %}
{%- for tool in tools %}
    {%- if tool.parameter_definitions is defined %}
        {%- set ns.new_tools = false %}
    {%- endif %}
{%- endfor %}
{%- if ns.new_tools %}
    {{- new_tool_parser(tools) }}
{%- endif %}
{{- '<|END_OF_TURN_TOKEN|>'}}
{%- for message in messages %}
  {%- if message.role == 'user' %}
    {{- '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + message.content|trim + '<|END_OF_TURN_TOKEN|>' }}
  {%- elif message.role == 'assistant' %}
    {{- '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + message.content|trim + '<|END_OF_TURN_TOKEN|>' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}
{%- endif %}
"""
# fireworks-ai llama-3-firefunction-v2:
FIREFUNCTION_V2 = """{%- set system_prompt_suffix -%}
{%- filter trim -%}
In addition to plain text responses, you can chose to call one or more of the provided functions.

Available functions as JSON spec:
{%- endfilter -%}
{%- endset -%}
{%- set system_prompt_suffix = system_prompt_suffix + "\n" + functions -%}
{%- set system_prompt_suffix = system_prompt_suffix + '\nToday is ' + datetime + '.' -%}
{%- for message in messages -%}
  {%- if loop.index0 == 0 -%}
    {{- bos_token + '<|start_header_id|>system<|end_header_id|>\n\n' + system_prompt_suffix + '<|eot_id|>' -}}
  {%- endif -%}
  {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'
      + message['content'] + '<|eot_id|>' -}}
{%- endfor -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
"""


def test_tool_use_templates_render_without_tools() -> None:
    """They iterate `tools` unconditionally ("'NoneType' object is not iterable" with None) or read
    `functions` ("'functions' is undefined"); llama.cpp loops over missing tools zero times."""
    user = [{"role": "user", "content": "Hi"}]
    hermes = ChatTemplate(HERMES_TOOL_USE, bos_token="<s>").render(user)
    assert hermes == (
        "<s><|im_start|>system\nYou are a function calling AI model. Here are the available tools: <tools>  "
        "</tools><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    command_r = ChatTemplate(COMMAND_R_TOOL_USE).render(user)
    assert command_r == (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>## Available Tools\n<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    )
    before = datetime.now().strftime("%b %d %Y")
    firefunction = ChatTemplate(FIREFUNCTION_V2, bos_token="<|begin_of_text|>").render(user)
    assert firefunction.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nIn addition to plain text responses, "
        "you can chose to call one or more of the provided functions.\n\nAvailable functions as JSON spec:"
        "\n\nToday is "
    )
    today = firefunction.split("Today is ")[1].split(".<|eot_id|>")[0]
    assert today.startswith(before) or today.startswith(datetime.now().strftime("%b %d %Y"))
    assert today.endswith(" GMT")
    assert firefunction.endswith("Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_labels_and_messages_say_where_a_template_came_from() -> None:
    inferred = ChatTemplate("{{ nope.x }}", origin="inferred", family="gemma")
    assert inferred.label == "inferred (gemma)" and "gemma template" in inferred.describe()
    with pytest.raises(TemplateError, match=r"^the inferred gemma template failed: 'nope' is undefined"):
        inferred.render([])
    assert ChatTemplate("x", origin="gguf").label == "gguf"
    with pytest.raises(TemplateError, match=r"^the built-in plain template failed"):
        ChatTemplate("{{ nope.x }}", origin="fallback").render([])


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{{ ''.__class__ }}",  # Jinja's sandbox alone would print "" here
        "{{ raise_exception.__globals__ }}",
        "{% set _ = messages.append({'role': 'user', 'content': 'x'}) %}",
        "{% set _ = messages[0].update({'content': 'x'}) %}",
    ],
)
def test_sandbox(source: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(TemplateError, match="unsafe") as caught:
        ChatTemplate(source).render(messages)
    assert "class" not in caught.value.message.split("unsafe")[-1]
    assert messages == [{"role": "user", "content": "hi"}]


def test_syntax_error_is_one_line() -> None:
    with pytest.raises(TemplateError) as caught:
        ChatTemplate("{% for m in messages %}\n{{ m.content }\n", origin="gguf").render(CONVERSATION)
    error = caught.value
    assert error.message.startswith("the model's chat template failed: syntax error on line 2")
    assert "\n" not in error.message and "models.toml" in (error.hint or "")


def test_raise_exception_does_not_loop() -> None:
    always = ChatTemplate("{{ raise_exception('Roles must alternate') }}")
    for messages in ([{"role": "user", "content": "hi"}], CONVERSATION):
        with pytest.raises(TemplateError, match=r"failed: Roles must alternate$"):
            always.render(messages)


def test_other_failures() -> None:
    with pytest.raises(TemplateError, match=r"template failed: .*concatenate"):
        ChatTemplate("{{ 'a' + none }}").render([])
    with pytest.raises(TemplateError, match="'nope' is undefined") as caught:
        ChatTemplate("{{ nope.x }}", origin="registry").render([])
    assert caught.value.message.startswith("the chat_template override in models.toml failed")
