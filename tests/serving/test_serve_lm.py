"""``rlhf-envs serve-lm`` and the language-model agents: the same model in process and over
HTTP, the chat-completions API's shape and errors, and ``compare`` with both agents."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import pytest
from fastapi.testclient import TestClient
from servers import cli_server, free_port

from rlhf_agents.lm_agents import EndpointLMAgent, LMEndpointError, LocalLMAgent, valid_reply
from rlhf_envs.dialogue import Turn
from rlhf_envs.domains.instructions import agent_instructions
from rlhf_envs.lm.chat import ChatModel, ChatRequestError, chat_messages, split_messages
from rlhf_envs.lm.reference import load_reference_lm
from rlhf_envs.serving.openai_api import create_app

pytestmark = pytest.mark.lm


@pytest.fixture(scope="module")
def model(test_lm_folder: Path) -> ChatModel:
    return ChatModel(test_lm_folder)


@pytest.fixture(scope="module")
def client(model: ChatModel) -> TestClient:
    return TestClient(create_app(model, "test-lm"))


TURNS = [
    Turn("user", "Hi, I'd like to renew my book."),
    Turn("agent", "Sure. Could you give me your library card number?"),
    Turn("user", "It's 55123."),
    Turn("system", "Account found for Ana Diaz."),
]


def test_turns_and_messages_map_both_ways():
    messages = chat_messages(TURNS, "Follow the policy.")
    assert messages[0] == {"role": "system", "content": "Follow the policy."}
    assert messages[-1] == {"role": "user", "content": "System: Account found for Ana Diaz."}
    instructions, turns = split_messages(messages)
    assert instructions == "Follow the policy." and turns == TURNS
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert split_messages(parts)[1] == [Turn("user", "ab")]
    for bad, says in (
        ([{"role": "tool", "content": "x"}], "accepted: system, developer, user, assistant"),
        ([{"role": "user", "content": 5}], "string or a list of text parts"),
        ([{"role": "system", "content": "only instructions"}], "at least one user or assistant"),
        ("hello", "must be a list"),
    ):
        with pytest.raises(ChatRequestError, match=says):
            split_messages(bad)  # type: ignore[arg-type]


def test_the_role_text_prompt_is_the_sft_window(model: ChatModel, test_lm_folder: Path):
    """Without instructions a Role: text model reads exactly what best-of-n and the tokens
    interface give the reference LM: the newest tokens, then "Agent:"."""
    lm = load_reference_lm(test_lm_folder)
    budget = model.max_positions - 40
    assert model.prompt_ids(chat_messages(TURNS), 40) == lm.prompt_ids(TURNS, budget)
    long_turns = TURNS * 20  # longer than the window: cut from the left
    assert model.prompt_ids(chat_messages(long_turns), 40) == lm.prompt_ids(long_turns, budget)
    # Instructions that do not fit whole are left out rather than cut in the middle.
    with_long = chat_messages(long_turns, agent_instructions("tiny"))
    assert model.prompt_ids(with_long, 40) == lm.prompt_ids(long_turns, budget)
    short = chat_messages(TURNS[:1], "Be brief.")
    assert model.prompt_ids(short, 40)[: len(lm.turn_ids("system", "Be brief."))] == lm.turn_ids(
        "system", "Be brief."
    )


CHATML = (
    "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}<|endofturn|>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)
ALTERNATING = (  # a template that wants user, assistant, user, ... (as Llama-2's does)
    "{% set body = messages[1:] if messages[0]['role'] == 'system' else messages %}"
    "{% for m in body %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}{% endfor %}"
    "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}<|endofturn|>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)
NO_SYSTEM = (  # a template that refuses a system message, as some do
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
    "{% endif %}{{ m['role'] }}:\n{{ m['content'] }}<|endofturn|>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)


def _templated(test_lm_folder: Path, folder: Path, template: str) -> Path:
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(test_lm_folder, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return folder


def test_a_chat_template_renders_the_messages_and_drops_the_oldest_first(
    test_lm_folder: Path, tmp_path: Path
):
    model = ChatModel(_templated(test_lm_folder, tmp_path / "chatml", CHATML))
    assert model.format_name == "chat-template"
    tok = model.lm.tokenizer
    messages = chat_messages(TURNS, "Be brief.")
    ids = model.prompt_ids(messages, 20)
    # The env's system line joins the user's words: many templates need alternating roles.
    joined = [
        *messages[:3],
        {"role": "user", "content": "It's 55123.\nSystem: Account found for Ana Diaz."},
    ]
    rendered = tok.apply_chat_template(joined, tokenize=False, add_generation_prompt=True)
    assert tok.decode(ids) == rendered
    text = tok.decode(ids)
    assert text.startswith("system:\nBe brief.") and text.endswith("assistant:\n")
    # Too long for the window: the oldest turns go first, the instructions stay.
    long = chat_messages(TURNS * 10, "Be brief.")
    cut = tok.decode(model.prompt_ids(long, 40))
    assert cut.startswith("system:\nBe brief.") and cut.endswith("assistant:\n")
    assert len(model.prompt_ids(long, 40)) <= model.max_positions - 40
    refusing = ChatModel(_templated(test_lm_folder, tmp_path / "nosys", NO_SYSTEM))
    folded = refusing.lm.tokenizer.decode(
        refusing.prompt_ids(chat_messages(TURNS[:1], "Be brief."), 20)
    )
    assert folded.startswith("user:\nBe brief.\n\nHi, I'd like to renew my book.")
    reply, _ = model.complete(messages, max_tokens=8, temperature=0)
    assert reply[0].finish_reason in ("stop", "length")
    strict = ChatModel(_templated(test_lm_folder, tmp_path / "strict", ALTERNATING))
    for turns in (TURNS, TURNS * 10):  # whole, and cut to the window (restarting at a user)
        ids = strict.prompt_ids(chat_messages(turns, "Be brief."), 40)
        text = strict.lm.tokenizer.decode(ids)
        assert text.startswith("system:\nBe brief.") and "\nuser:\n" in text


def test_the_instructions_cover_every_task_and_rule():
    for domain in ("customer_service", "finance", "medical", "tiny"):
        text = agent_instructions(domain)
        from rlhf_envs.simulation.domain import get_domain

        book = get_domain(domain).policy
        for sub in book.subflows.values():
            assert sub.title in text
        for rule in book.rules.values():
            assert " ".join((rule.description or rule.id).split())[:40] in text
        assert "{" not in text  # templates shown as <placeholders>, never raw fields


def test_chat_completions_answer_in_the_api_shape_and_reproducibly(client: TestClient):
    body = {
        "model": "test-lm",
        "messages": chat_messages(TURNS[:1]),
        "max_tokens": 12,
        "temperature": 1.0,
        "seed": 7,
        "n": 2,
        "logprobs": True,
    }
    first = client.post("/v1/chat/completions", json=body)
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["object"] == "chat.completion" and data["model"] == "test-lm"
    assert [c["index"] for c in data["choices"]] == [0, 1]
    for choice in data["choices"]:
        assert choice["message"]["role"] == "assistant"
        assert choice["finish_reason"] in ("stop", "length")
        assert all(t["logprob"] <= 0 for t in choice["logprobs"]["content"])
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    again = client.post("/v1/chat/completions", json=body).json()
    assert [c["message"] for c in again["choices"]] == [c["message"] for c in data["choices"]]
    other = client.post("/v1/chat/completions", json={**body, "seed": 8}).json()
    assert [c["message"] for c in other["choices"]] != [c["message"] for c in data["choices"]]
    # Without a seed every request draws anew (rollouts of one prompt must differ).
    unseeded = {k: v for k, v in body.items() if k != "seed"} | {"n": 1, "max_tokens": 30}
    replies = {
        client.post("/v1/chat/completions", json=unseeded).json()["choices"][0]["message"][
            "content"
        ]
        for _ in range(4)
    }
    assert len(replies) > 1
    assert client.get("/v1/models").json()["data"][0]["id"] == "test-lm"
    assert client.get("/health").json() == {"status": "ok"}


def test_a_streamed_answer_carries_the_same_reply(client: TestClient):
    body = {"model": "test-lm", "messages": chat_messages(TURNS[:1]), "max_tokens": 12, "seed": 3}
    whole = client.post("/v1/chat/completions", json=body).json()
    streamed = client.post(
        "/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == whole["usage"]


def test_greedy_replies_match_the_model_in_process(client: TestClient, model: ChatModel):
    messages = chat_messages(TURNS, "Be brief.")
    served = client.post(
        "/v1/chat/completions",
        json={"model": "test-lm", "messages": messages, "max_tokens": 20, "temperature": 0},
    ).json()
    local, _ = model.complete(messages, max_tokens=20, temperature=0)
    assert served["choices"][0]["message"]["content"] == local[0].text


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"model": "gpt-9"}, 404, "is not served here; this server serves 'test-lm'"),
        ({"tools": [{"type": "function"}]}, 400, "not supported by this server: tools="),
        ({"top_p": 0.5}, 400, "top_p=0.5"),
        ({"temperature": 3}, 400, "temperature must be a number from 0 to 2"),
        ({"temperature": "hot"}, 400, "temperature must be a float"),
        ({"max_tokens": 0}, 400, "max_tokens must be between 1 and"),
        ({"n": 0}, 400, "n must be an integer from 1 to 64"),
        ({"stop": [1]}, 400, "stop must be a string or a list of at most 4 strings"),
        ({"n": 64, "max_tokens": 200}, 400, "n x max_tokens is 12800; this server generates"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role is 'robot'"),
        ({"messages": None}, 400, "messages must be a list"),
    ],
)
def test_bad_requests_get_clear_errors(client: TestClient, change, status, says):
    body = {"model": "test-lm", "messages": chat_messages(TURNS[:1]), "max_tokens": 4, **change}
    answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert says in error["message"] and error["type"]


def test_plain_text_settings_pass_and_a_failure_keeps_the_api_shape(
    client: TestClient, model: ChatModel, monkeypatch
):
    body = {"model": "test-lm", "messages": chat_messages(TURNS[:1]), "max_tokens": 4}
    plain = {**body, "response_format": {"type": "text"}, "tool_choice": "none", "top_k": 5}
    assert client.post("/v1/chat/completions", json=plain).status_code == 200

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "complete", broken)
    failed = TestClient(create_app(model, "test-lm"), raise_server_exceptions=False).post(
        "/v1/chat/completions", json=body
    )
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "server_error"
    assert "RuntimeError: out of memory" in failed.json()["error"]["message"]


def test_an_api_key_is_required_when_set(model: ChatModel):
    guarded = TestClient(create_app(model, "m", api_key="s3cret"))
    body = {"model": "m", "messages": chat_messages(TURNS[:1]), "max_tokens": 4}
    assert guarded.post("/v1/chat/completions", json=body).status_code == 401
    ok = guarded.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert guarded.get("/health").status_code == 200  # (no secret needed to see it is up)


def test_replies_are_made_acceptable_to_the_text_interface():
    assert valid_reply("  Hello 😀 there ", 1000) == "Hello ? there"
    assert valid_reply("   ", 1000) == "..."
    assert valid_reply("abcdef", 3) == "abc"


def test_the_local_agent_plays_a_text_episode_reproducibly(test_lm_folder: Path):
    env = gym.make("RLHF-ChatText-v0", render_mode="ansi")

    def play(agent) -> list[str]:
        agent.reset()
        obs, _ = env.reset(seed=3)
        replies = []
        for _ in range(3):
            reply = agent.act(obs, env)
            replies.append(reply)
            obs, _, terminated, truncated, _ = env.step(reply)
            if terminated or truncated:
                break
        return replies

    first = play(LocalLMAgent(str(test_lm_folder), max_tokens=16, seed=1))
    assert first == play(LocalLMAgent(str(test_lm_folder), max_tokens=16, seed=1))
    agent = LocalLMAgent(str(test_lm_folder), max_tokens=16, seed=1)
    assert play(agent) == first and play(agent) != first  # the next try draws anew
    with pytest.raises(TypeError, match="RLHF-\\*Text-v0"):
        agent.act([1, 2, 3], env)


def test_a_cut_observation_starts_at_a_whole_turn():
    """The text observation keeps the newest characters; the agent must not read the cut
    remains of an agent or system line as the user speaking."""
    from rlhf_agents.lm_agents import LocalLMAgent

    env = gym.make("RLHF-ChatText-v0", max_context_chars=120)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(env.unwrapped.expert_action())
    assert len(obs) == 120
    agent = LocalLMAgent.__new__(LocalLMAgent)  # (the prompt side only: no model needed)
    agent.name, agent.instructions = "probe", False
    messages = agent.messages(obs, env)
    whole = chat_messages(env.unwrapped.state.history)
    assert messages == whole[-len(messages) :]


def test_an_unreachable_endpoint_fails_with_the_url():
    port = free_port()  # (nothing listens there)
    agent = EndpointLMAgent("m", f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01)
    env = gym.make("RLHF-ChatText-v0")
    obs, _ = env.reset(seed=0)
    with pytest.raises(LMEndpointError, match=f"127.0.0.1:{port}/v1/chat/completions.*2 tries"):
        agent.act(obs, env)


@pytest.mark.integration
def test_compare_runs_the_local_and_the_served_model_on_the_same_scenarios(
    test_lm_folder: Path, tmp_path: Path, cli
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    config = tmp_path / "agents.yaml"
    config.write_text(
        f"local:\n  base: hf\n  model: {test_lm_folder}\n  max_tokens: 16\n  temperature: 0\n"
        f"served:\n  base: openai\n  model: test-lm@{url}\n  max_tokens: 16\n  temperature: 0\n"
    )
    args = [
        "compare",
        "--envs",
        "RLHF-ChatText-v0",
        "--seeds",
        "1",
        "--scenarios",
        "2",
        "--tries",
        "2",
        "--jobs",
        "1",
        "--config",
        str(config),
    ]
    serve = ("serve-lm", str(test_lm_folder), "--name", "test-lm", "--threads", "1")
    with cli_server(*serve, port=port):
        out = cli(
            *args,
            "--agents",
            "local,served,expert",
            "--reference",
            "expert",
            "--out",
            str(tmp_path / "cmp"),
        )
        assert out.returncode == 0, out.stderr
    rows = {r["agent"]: r for r in csv.DictReader((tmp_path / "cmp" / "leaderboard.csv").open())}
    assert {"pass^1", "pass^2", "pass@2"} <= set(rows["local"])
    # Greedy, same prompts, same model: the served model plays exactly as the local one.
    assert rows["local"]["gold"] == rows["served"]["gold"]
    tasks = {r["task"] for r in csv.DictReader((tmp_path / "cmp" / "pass_k.csv").open())}
    assert "all" in tasks and len(tasks) >= 2
    transcripts = list((tmp_path / "cmp" / "transcripts").rglob("*"))
    assert any("served" in p.name for p in transcripts) and any(
        "local" in p.name for p in transcripts
    )
    results = {
        p.parent.parent.name: json.loads(p.read_text())
        for p in (tmp_path / "cmp" / "runs").rglob("result.json")
    }
    assert results["local"]["tasks"] == results["served"]["tasks"] == results["expert"]["tasks"]
    # With the server stopped, the endpoint agent fails naming the URL (and compare says so).
    down = cli(
        *args, "--agents", "served", "--reference", "served", "--out", str(tmp_path / "down")
    )
    assert down.returncode != 0
    assert f"{url}/chat/completions" in down.stderr
