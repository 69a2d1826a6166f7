"""GRPO/RLOO through TRL's rollout hook: groups as TRL expects them, TRL's log-probs equal
the sampling ones, a 2-step run changes the weights, ``train-lm`` writes its folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from rlhf_agents.grpo import (
    GRPORecipe,
    build_trainer,
    make_rollout_func,
    parse_seed_prompt,
    positions_from_mask,
    seed_prompt,
)

pytestmark = pytest.mark.lm
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


class _FakeTrainer:
    """What rollout_func reads from TRL's trainer: the model and the group size."""

    def __init__(self, model, size):
        self.model, self.num_generations, self.num_generations_eval = model, size, size
        self.temperature = 1.0


@pytest.fixture(scope="module")
def model_and_tokenizer(test_lm_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        AutoModelForCausalLM.from_pretrained(test_lm_folder).eval(),
        AutoTokenizer.from_pretrained(test_lm_folder),
    )


def test_rollout_func_returns_one_scored_reply_per_prompt_in_groups(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    rollout = make_rollout_func(tokenizer, max_branch_turn=3)
    prompts = [seed_prompt("RLHF-ChatText-v0", s) for s in (7, 8) for _ in range(4)]
    out = rollout(prompts, _FakeTrainer(model, 4))
    for key in ("prompt_ids", "completion_ids", "logprobs", "env_reward", "gold_reward"):
        assert len(out[key]) == 8, key
    for g in range(2):
        group = range(4 * g, 4 * g + 4)
        assert len({tuple(out["prompt_ids"][i]) for i in group}) == 1  # one state per group
    assert all(
        len(c) == len(lp) for c, lp in zip(out["completion_ids"], out["logprobs"], strict=True)
    )
    with pytest.raises(ValueError, match="repeated num_generations"):
        rollout([seed_prompt("RLHF-ChatText-v0", s) for s in range(4)], _FakeTrainer(model, 2))
    assert parse_seed_prompt("RLHF-ChatText-v0 seed 12") == ("RLHF-ChatText-v0", 12)
    with pytest.raises(ValueError, match="not a seed prompt"):
        parse_seed_prompt("hello")


def test_trls_forward_gives_the_sampling_logprobs_once_positions_come_from_the_mask(
    model_and_tokenizer,
):
    """TRL's loss runs prompt + completion, prompts left-padded, without position ids."""
    from transformers import AutoModelForCausalLM

    model, tokenizer = model_and_tokenizer
    # Branching at the first turn: the openings differ in length, so prompts do too.
    out = make_rollout_func(tokenizer, max_branch_turn=1)(
        [seed_prompt("RLHF-ChatText-v0", s) for s in (3, 4, 5) for _ in range(2)],
        _FakeTrainer(model, 2),
    )
    prompts, completions = out["prompt_ids"], out["completion_ids"]
    assert len({len(p) for p in prompts}) > 1  # the batch needs left padding
    width_p, width_c = max(map(len, prompts)), max(map(len, completions))
    pad = tokenizer.pad_token_id
    ids = torch.full((len(prompts), width_p + width_c), pad)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
        mask[i, width_p - len(p) : width_p + len(c)] = 1

    def trl_logprobs(m):
        logits = m(input_ids=ids, attention_mask=mask).logits[:, width_p - 1 : -1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, width_p:, None])[..., 0]
        return [logp[i, : len(c)].detach().numpy() for i, c in enumerate(completions)]

    fresh = AutoModelForCausalLM.from_pretrained(model.name_or_path).eval()
    shifted = max(
        np.abs(a - b).max() for a, b in zip(trl_logprobs(fresh), out["logprobs"], strict=True)
    )
    positions_from_mask(fresh)
    exact = max(
        np.abs(a - b).max() for a, b in zip(trl_logprobs(fresh), out["logprobs"], strict=True)
    )
    assert shifted > 1e-2 and exact < 1e-4


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_two_grpo_steps_on_cpu_change_the_weights(test_lm_folder, tmp_path, algo):
    recipe = GRPORecipe(steps=2, group_size=4, groups_per_step=2, algo=algo, max_branch_turn=3)
    trainer = build_trainer(recipe, test_lm_folder, tmp_path)
    assert trainer.args.scale_rewards == ("none" if algo == "rloo" else "group")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    logs = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logs) == 2 and all(np.isfinite(row["rewards/env_reward/mean"]) for row in logs)
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(before[k], v)]
    assert len(changed) > len(before) // 2


def test_a_recipe_refuses_what_cannot_train():
    with pytest.raises(ValueError, match="algo"):
        GRPORecipe(algo="ppo")
    with pytest.raises(ValueError, match="group_size"):
        GRPORecipe(group_size=1)
    with pytest.raises(ValueError, match="text or tokens id"):
        GRPORecipe(env_id="RLHF-Chat-v0")
    with pytest.raises(ValueError, match="not a registered env id"):
        GRPORecipe(env_id="RLHF-Nope-v0")


@pytest.mark.integration
def test_train_lm_writes_a_results_folder(cli, test_lm_folder):
    result = cli(
        "train-lm", "--lm", str(test_lm_folder), "--steps", "2", "--group-size", "2",
        "--groups-per-step", "2", "--eval-episodes", "3", "--max-branch-turn", "2",
        "--threads", "1", "--best-of", "", "--out", "out",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rl_minus_sft" in result.stdout and "best_of_2_minus_sft" in result.stdout
    from pathlib import Path

    out = Path("out")
    for name in ("results.csv", "curve.png", "transcripts.md", "summary.json", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "policy" / "model.safetensors").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == [
        "SFT (sampled)",
        "best-of-2",
        "GRPO (2 steps)",
    ]
    assert summary["rows"][2]["kl_per_token"] != ""


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 120 steps with the 4-turn horizon: ~7.5 s each
def test_a_short_grpo_run_gains_over_sft_on_the_reference_lm(tmp_path, monkeypatch):
    """The recipe, shortened (120 steps instead of 370): with the project's reference LM
    on RLHF-ChatText-v0, the training return per reply rises and the trained policy's
    held-out gold per episode is above the sampled SFT start (paired, same seeds)."""
    from rlhf_agents.grpo import train_lm
    from rlhf_envs.lm.build import default_lm_path

    monkeypatch.delenv("RLHF_ENVS_LM")  # the project's LM, not the test LM
    recipe = GRPORecipe(steps=120)
    summary = train_lm(recipe, default_lm_path(), tmp_path, eval_episodes=60, best_of=())
    rewards = [row["rewards/env_reward/mean"] for row in summary["training_log"]]
    assert np.mean(rewards[-30:]) > np.mean(rewards[:30])
    gain, _, _ = summary["paired_gains"]["rl_minus_sft"]
    assert gain > 0
