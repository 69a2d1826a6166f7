"""A domain's policy book written out as instructions for a language-model agent.

The scripted expert reads the policy book as data; a chat model reads it as text. This
module writes that text, the system prompt of the language-model agents
(:mod:`rlhf_agents.lm_agents`) and of the verifiers environment (``rlhf_verifiers``): every
task with its steps in order (branches as "if ... otherwise ..."), what each step asks,
does or says, the rules of conduct, and the figures the policy itself states. The
scenario's facts are not in it: the agent learns them from the user and from the system's
lines, as the expert does.

It is written from the loaded domain, so a domain of your own gets its instructions too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlhf_envs.simulation.domain import Domain, get_domain
from rlhf_envs.simulation.policy import Branch, PlanItem, Step


def _words(identifier: str) -> str:
    return identifier.replace("_", " ")


def _unfilled(template: str) -> str:
    """A template with its fields as placeholders ("my {product}" -> "my <product>")."""
    return re.sub(r"\{(\w+)\}", lambda m: f"<{_words(m.group(1))}>", template)


def _join(items: Sequence[str], last: str) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _step_text(domain: Domain, step: Step) -> str:
    """One step as an instruction ("ask for the client ID and date of birth to ...")."""
    slot_names = [domain.slots[s].name if s in domain.slots else _words(s) for s in step.slots]
    mention = _join([_words(m) for m in step.mention], "and")
    if step.kind == "ask":
        need = step.need or len(slot_names)
        which = _join(slot_names, "and" if need >= len(slot_names) else "or")
        text = f"ask for the {which}" + (f" to {step.purpose}" if step.purpose else "")
    elif step.kind == "check":
        text = f"tell them you will {step.purpose or _words(step.id)} and wait for the result"
    elif step.kind == "act":
        text = _words(step.action or step.id)
        text += f", stating the {mention}" if mention else ""
    elif step.kind == "inform":
        text = f"tell them the {mention}" if mention else _words(step.id)
    elif step.kind == "decline":
        text = f"apologise and decline ({_words(step.id)})"
        text += "; offer to pass them to a manager" if step.offer_manager else ""
    else:  # close
        text = "ask whether there is anything else you can help with"
    if step.disclose:
        text += f"; include the {_join([_words(d) for d in step.disclose], 'and')}"
    return text


def _plan_lines(domain: Domain, plan: Sequence[PlanItem], depth: int) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    for item in plan:
        if isinstance(item, Branch):
            lines.append(f"{pad}- if {_words(item.hook)}:")
            lines += _plan_lines(domain, item.then, depth + 1)
            if item.otherwise:
                lines.append(f"{pad}- otherwise:")
                lines += _plan_lines(domain, item.otherwise, depth + 1)
        else:
            lines.append(f"{pad}- {_step_text(domain, item)}")
    return lines


def agent_instructions(domain: str | Domain) -> str:
    """The policy book of ``domain`` as a system prompt for a language-model agent.

    Args:
        domain: a built-in domain name, a domain folder, or a loaded :class:`Domain`.

    Returns:
        Plain text: the role, how a conversation goes (one step per reply; the user's
        words and ``System:`` lines bring the facts), every task with its steps, the
        rules of conduct and the figures the policy states.
    """
    dom = domain if isinstance(domain, Domain) else get_domain(domain)
    book = dom.policy
    lines = [
        f"You are the agent in a {_words(dom.name)} conversation. Follow the policy book "
        "below exactly. Work out which task the user brings, then do its steps in order, "
        "one step per reply, in a short friendly message. Ask only for what the current "
        "step needs. Lines that start with 'System:' are results of your lookups and "
        "actions; use the facts they give and never invent facts, amounts or dates.",
        "",
        "Tasks:",
    ]
    for sub in book.subflows.values():
        title = book.flow_titles.get(sub.flow, _words(sub.flow))
        lines.append(
            f'* {sub.title} ({title}; the user says "I\'d like to {_unfilled(sub.goal)}"):'
        )
        lines += _plan_lines(dom, sub.plan, 1)
    if book.rules:
        lines += ["", "Rules (a reply that breaks one fails the conversation or costs points):"]
        for rule in book.rules.values():
            text = " ".join((rule.description or _words(rule.id)).split())
            lines.append(f"- {text}")
    if book.policy_values:
        lines += [
            "",
            f"Figures the policy states, which you may quote: {', '.join(book.policy_values)}.",
        ]
    return "\n".join(lines)
