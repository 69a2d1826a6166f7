"""rl-zoo3 hyperparameters for A2C on the suite's select-interface envs (see rlhf_agents.zoo)."""

from rlhf_agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("a2c")
