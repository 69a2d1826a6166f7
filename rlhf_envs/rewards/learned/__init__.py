"""Reward models learned from feedback: a fast linear model on hashed n-grams and a
transformers sequence classifier (MiniLM by default), trained with the Bradley-Terry loss
on preference pairs (Davidson's model with ties), with cross-entropy on ratings, or on both
with a joint loss; and ensembles of them (mean score, members' spread as uncertainty).

Use one as a reward plugin with ``gymnasium.make("RLHF-Chat-v0", reward="learned:PATH")``;
train one with ``rlhf-envs train-rm`` or :func:`train_reward_model`.
"""

from rlhf_envs.rewards.learned.checkpoint import CheckpointError
from rlhf_envs.rewards.learned.ensemble import EnsembleRewardModel, load_learned, load_reward_model
from rlhf_envs.rewards.learned.evaluation import (
    PairwiseReport,
    RatingReport,
    pairwise_accuracy,
    rating_agreement,
)
from rlhf_envs.rewards.learned.model import LearnedRewardModel
from rlhf_envs.rewards.learned.training import TrainResult, bradley_terry_loss, train_reward_model

__all__ = [
    "CheckpointError",
    "EnsembleRewardModel",
    "LearnedRewardModel",
    "PairwiseReport",
    "RatingReport",
    "TrainResult",
    "bradley_terry_loss",
    "load_learned",
    "load_reward_model",
    "pairwise_accuracy",
    "rating_agreement",
    "train_reward_model",
]
