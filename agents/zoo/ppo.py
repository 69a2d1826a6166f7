"""rl-zoo3 hyperparameters for PPO on the suite's select-interface envs (see agents.zoo)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("ppo")
