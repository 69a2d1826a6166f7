"""The dialogue engine: what plays a conversation in any domain.

Loading a domain folder (``domain.py``), its policy book (``policy.py``), drawing a
scenario (``scenario.py``), the dialogue state and how a reply is read and judged
against the policy (``state.py``, ``understanding.py``, ``assessment.py``, ``values.py``),
the simulated user (``user_simulator.py``), the scripted expert (``expert.py``), the
candidate replies of the select interface (``candidates.py``), and whole conversations
(``conversation.py``, ``corpus.py``). The domains themselves are data plus a few hooks,
in :mod:`rlhf_envs.domains`.

Nothing here imports the reward models, the env, the interfaces or the language model.
"""

from rlhf_envs.simulation.domain import BUILTIN_DOMAINS, Domain, DomainError, get_domain

__all__ = ["BUILTIN_DOMAINS", "Domain", "DomainError", "get_domain"]
