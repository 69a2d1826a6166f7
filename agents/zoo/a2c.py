"""rl-zoo3 hyperparameters for A2C on the suite's select-interface envs (see agents.zoo)."""

from agents.zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("a2c")
