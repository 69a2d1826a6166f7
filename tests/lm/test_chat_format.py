"""Turn formats: the Role: text format and chat templates, turn by turn, token-exact."""

from __future__ import annotations

import shutil

import pytest

from rlhf_envs.lm.chat_format import ChatTemplateFormat, RoleTextFormat, turn_format
from rlhf_envs.rollouts import LMPolicy, play_episodes

# A plain-text template in the ChatML layout, ended by the test LM's end-of-turn token.
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}<|endofturn|>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)


@pytest.fixture(scope="module")
def templated_folder(test_lm_folder, tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("chat-lm")
    shutil.copytree(test_lm_folder, folder, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def test_role_text_turns_are_the_dialogue_format(test_lm_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(test_lm_folder)
    fmt = turn_format(tokenizer)
    assert isinstance(fmt, RoleTextFormat)
    ids = fmt.turn_ids("user", "Where is my order?")
    assert tokenizer.decode(ids) == "User: Where is my order?<|endofturn|>"
    assert tokenizer.decode(fmt.reply_prefix) == "Agent:"
    assert fmt.stop_ids == {tokenizer.eos_token_id}


def test_a_chat_template_is_used_turn_by_turn(templated_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(templated_folder)
    fmt = turn_format(tokenizer)
    assert isinstance(fmt, ChatTemplateFormat)
    assert tokenizer.decode(fmt.reply_prefix) == "assistant:\n"
    assert tokenizer.decode(fmt.after_stop) == "\n"
    assert tokenizer.decode(fmt.turn_ids("system", "Account pulled up.")) == (
        "user:\nSystem: Account pulled up.<|endofturn|>\n"
    )


@pytest.mark.lm
def test_a_templated_episode_is_the_template_of_the_whole_conversation(templated_folder):
    """Built turn by turn, the episode's ids decode to the template applied to the whole
    conversation at once (with the model's replies as it wrote them)."""
    policy = LMPolicy.from_folder(templated_folder)
    (episode,) = play_episodes(policy, "RLHF-ChatText-v0", [5], seed=0, max_turns=4)
    tokenizer = policy.tokenizer
    messages = []
    turns = iter(episode.turns)
    for line in episode.transcript.splitlines():
        role, _, text = line.partition(": ")
        if role == "Agent":
            ids = next(turns).reply_ids
            ids = ids[:-1] if ids and ids[-1] == tokenizer.eos_token_id else ids
            messages.append({"role": "assistant", "content": tokenizer.decode(ids)})
        elif role == "User":
            messages.append({"role": "user", "content": text})
        elif role == "System":
            messages.append({"role": "user", "content": f"System: {text}"})
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(episode.token_ids) == whole


def test_a_template_that_rewrites_earlier_turns_is_refused(test_lm_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(test_lm_folder)
    # Numbers every message by the conversation's length: not prefix-stable.
    tokenizer.chat_template = (
        "{% for m in messages %}{{ messages|length }} {{ m['content'] }}<|endofturn|>{% endfor %}"
    )
    with pytest.raises(ValueError, match="not prefix-stable"):
        turn_format(tokenizer)
