"""A conversation with the simulated user outside the env: for corpora, checks and tests.

The env keeps its own loop (it splits its random generators and scores every reply);
everything else that plays whole conversations of a domain (the expert transcripts the
reference LM learns from, ``rlhf-envs check-domain``, the domain tests) uses this one.
"""

from __future__ import annotations

import numpy as np

from rlhf_envs.simulation.domain import Domain
from rlhf_envs.simulation.state import DialogueState
from rlhf_envs.simulation.user_simulator import UserSimulator, UserTurn


class Conversation:
    """One episode of ``domain``, every draw from ``rng``: the scenario and the user's
    opening on creation, then one :meth:`turn` per agent reply.

    Args:
        domain: the loaded domain.
        rng: the generator everything is drawn from, in a fixed order.
        subflows: restrict the task to these subflow ids.

    Attributes:
        state: the dialogue so far (``state.current_step`` is the step due).
    """

    def __init__(
        self, domain: Domain, rng: np.random.Generator, subflows: tuple[str, ...] | None = None
    ):
        self.rng = rng
        self.user = UserSimulator(domain)
        scenario = domain.sample_scenario(rng, subflows)
        self.state = DialogueState.start(domain, scenario, self.user.opening(scenario, rng))
        self.mood = self.user.mood(scenario)

    @property
    def over(self) -> bool:
        """No step is due: the task is done, or the user has left."""
        return self.state.current_step is None

    def turn(self, reply: str) -> UserTurn:
        """Send the agent's ``reply``; the user answers and the state moves on."""
        assessment = self.state.assess(reply)
        answer = self.user.respond(self.state, assessment, self.mood, self.rng)
        self.state = self.state.after(reply, assessment, answer.text, answer.ended)
        return answer
