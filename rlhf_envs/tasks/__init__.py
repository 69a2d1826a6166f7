"""Domains: scenarios, policy book, user simulator, candidate replies and expert.

A domain is a folder of data plus a few hooks (see ``domain.py``); everything else here
is shared by all domains. Nothing in this package imports the env or the interfaces.
"""

from rlhf_envs.tasks.domain import BUILTIN_DOMAINS, Domain, DomainError, get_domain

__all__ = ["BUILTIN_DOMAINS", "Domain", "DomainError", "get_domain"]
