"""The suite's text ids as a `verifiers` (v1) environment: taskset id ``rlhf-verifiers``.

verifiers' loader finds an environment by its taskset id (``rlhf-verifiers`` ->
this module) and takes from ``__all__`` the one Taskset, the Env and the default Harness::

    vf-eval rlhf-verifiers -m MODEL --client.base-url http://127.0.0.1:8000/v1 \\
        --client.api-key-var OPENAI_API_KEY -n 8 -r 2 --no-push \\
        --env.taskset.env-id RLHF-FinanceText-v0

or in Python: ``verifiers.v1.load_environment(verifiers.v1.resolve_env_config({"taskset":
{"id": "rlhf-verifiers", "env_id": "RLHF-ChatText-v0", "num_tasks": 8}}))``.

Needs the ``verifiers`` extra (``pip install 'rlhf-envs[verifiers]'``), in an environment
without the ``openenv`` extra (verifiers 0.4 pins mcp 2, OpenEnv 0.10 needs mcp < 2).
"""

from rlhf_verifiers.harness import ChatHarness
from rlhf_verifiers.taskset import RLHFEnv, RLHFTaskset

__all__ = ["ChatHarness", "RLHFEnv", "RLHFTaskset"]
