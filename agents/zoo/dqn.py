"""rl-zoo3 hyperparameters for DQN on the suite's select-interface envs (see agents.zoo)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("dqn")
