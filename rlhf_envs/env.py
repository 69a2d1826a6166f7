"""The dialogue environment: one class for every domain, interface and reward model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from rlhf_envs.dialogue import format_transcript
from rlhf_envs.interfaces import make_interface
from rlhf_envs.rendering import render_transcript_image
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.registry import RewardSpec, make_reward_model
from rlhf_envs.rewards.validation import CheckedRewardModel
from rlhf_envs.simulation import get_domain
from rlhf_envs.simulation.state import DialogueState
from rlhf_envs.simulation.user_simulator import Mood, UserSimulator

if TYPE_CHECKING:
    from rlhf_envs.lm.reference import ReferenceLM

StepResult = tuple[Any, float, bool, bool, dict[str, Any]]
"""What ``step`` returns: observation, reward, terminated, truncated, info."""


def score_turns(
    reward_model: CheckedRewardModel, gold_model: CheckedRewardModel, exchanges: Sequence[Exchange]
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Score replies in one batched call per model: rewards, their components, gold rewards.

    The gold model is not called again when it is the training reward (same spec).
    """
    rewards, components = reward_model.score_and_components(exchanges)
    same = gold_model.spec is not None and gold_model.spec == reward_model.spec
    gold = rewards if same else gold_model.score(exchanges)
    return rewards, components, gold


FREE_TEXT_INTERFACES = ("tokens", "text")


def default_gold(interface: str, lm: str | None = None) -> RewardSpec:
    """The gold model of an interface: the full rubric, plus fluency under the
    reference LM on free text (so keyword stuffing does not pay)."""
    if interface in FREE_TEXT_INTERFACES:
        # (a loaded ReferenceLM is named by its folder, so the spec stays serialisable)
        return {
            "rubric": 1.0,
            "fluency" if lm is None else f"fluency:{getattr(lm, 'path', lm)}": 1.0,
        }
    return "rubric"


def with_canonical_rewards(
    spec: EnvSpec | None, reward_model: Any, gold_model: Any
) -> EnvSpec | None:
    """``spec`` with its ``reward``/``gold`` arguments in canonical form (checkpoint paths
    made absolute), so an env rebuilt from the spec in another folder or process finds the
    same reward models."""
    if spec is None:
        return None
    kwargs = dict(spec.kwargs)
    for key, model in (("reward", reward_model), ("gold", gold_model)):
        if key in kwargs and model is not None and model.spec is not None:
            kwargs[key] = model.spec
    return dataclasses.replace(spec, kwargs=kwargs)


class CanonicalRewardSpecs:
    """Mixin for envs with ``reward_model``/``gold_model``: the ``spec`` that
    ``gymnasium.make`` / ``make_vec`` set after ``__init__`` records the canonical reward
    specs (see :func:`with_canonical_rewards`)."""

    @property
    def spec(self) -> EnvSpec | None:
        return getattr(self, "_spec", None)

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        self._set_spec(value)

    def _set_spec(self, value: EnvSpec | None) -> None:
        self._spec = with_canonical_rewards(
            value, getattr(self, "reward_model", None), getattr(self, "gold_model", None)
        )


RESET_OPTIONS = ("scenario_seed",)
"""The keys ``reset(options=...)`` accepts."""


def _check_reset_options(options: Any) -> None:
    # An unknown key is refused, not ignored: a misspelt "scenario_seed" would silently
    # draw a different scenario than the caller meant.
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise TypeError(
            f"reset(options=...) takes a dict or None, got {type(options).__name__}; "
            f"accepted keys: {', '.join(RESET_OPTIONS)}"
        )
    unknown = sorted(map(repr, set(options) - set(RESET_OPTIONS)))
    if unknown:
        raise ValueError(
            f"reset options {', '.join(unknown)} are not known; "
            f"accepted: {', '.join(RESET_OPTIONS)}"
        )


class DialogueEnv(CanonicalRewardSpecs, gym.Env):
    """A conversation with a simulated user, rewarded by a pluggable preference model.

    ## Description

    Each episode is one conversation. The user opens with a request (a refund, a
    password reset, ...); the agent must follow the domain's policy book: identify and
    verify the user, check the conditions that apply (membership level, return window,
    shipping status, ...), then act or decline as the policy says, state only true facts,
    protect private data, stay polite and concise, and close by offering further help.
    The user simulator reveals facts only when asked, reacts to what the agent says and
    leaves when it runs out of patience. Rewards come from a reward model that scores
    each reply in context, as a human rater would (see Rewards).

    Three domains share this class, the interfaces and the reward machinery; each is a
    folder of data plus a few hooks (``rlhf_envs/domains/<domain>/``):

    - customer service, modelled on the policy book of ABCD (Chen et al., NAACL 2021):
      7 flows, 27 tasks (refunds and returns, order issues, account access, shipping,
      subscriptions, purchase disputes, product and store questions);
    - financial advice: know-your-customer questions before any recommendation, a
      suitability check, risk and fee disclosures, referral to a licensed professional
      where required; never a guaranteed return, a stock tip or pressure to buy;
    - medical triage: questions that rule red flags in or out, emergency care at once
      for a red flag, otherwise self-care, pharmacist, a doctor within days or urgent
      care with safety-netting; allergies and medicines checked before any
      over-the-counter medicine; never a diagnosis or a prescription drug.

    ## Action Space

    With ``interface="select"`` (the default): ``Discrete(K)``, ``K = num_candidates``.
    Each turn the env proposes K replies in random order: the policy-correct one and
    distractors of named failure types (rude, invented fact, off-policy promise, skipped
    verification, private-data leak, verbose, evasive, off-topic, repeated, and the
    domain's own: a missing disclosure, a guaranteed return, a missed red flag, ...).
    The action is the index of the reply to send. One step is one agent turn.

    With ``interface="tokens"``: ``Discrete(V)`` over the reference LM's vocabulary (the
    project's byte-level BPE, V = 2048, unless ``lm`` names another model). One step is
    one token; the reply ends at the end-of-turn token or after ``max_reply_tokens``.
    :meth:`action_masks` rules out padding (for sb3-contrib's ``MaskablePPO``); a masked
    token taken anyway is skipped and earns ``invalid_token_penalty``.

    With ``interface="text"``: ``Text(max_reply_chars)`` over printable text
    (``rlhf_envs.interfaces.REPLY_CHARSET``); one step is one reply string. Strings
    outside the space raise ``ValueError`` saying why.

    ## Observation Space

    Select: ``Dict`` of float32 arrays (D = ``encoding_dim``): ``dialogue`` ``(D,)`` and
    ``last_turn`` ``(D,)`` in ``[-1, 1]`` encode the conversation so far and the user's
    latest message with hashed word and character n-grams; ``candidates`` ``(K*D,)``
    encodes each candidate (row-major ``K x D``); ``candidate_stats`` ``(K*3,)`` in
    ``[0, 1]`` gives each candidate's similarity to earlier replies, length and share of
    unsupported figures; ``turn`` ``(1,)`` is the turn count / 20. Agents that want one
    vector can use ``gymnasium.wrappers.FlattenObservation``.

    Tokens: ``Dict`` of int64 ``Box`` es of length L = ``context_length``:
    ``input_ids`` and ``attention_mask``, left-padded: the dialogue as ``Role: text``
    turns (cut from the left to ``L - max_reply_tokens`` tokens), ``Agent:`` and the
    reply so far. Text: the transcript as a string ending with ``"Agent:"``.

    ## Rewards

    Each reply is scored by the reward model named by ``reward`` (default ``"rubric"``,
    the scripted rubric). The rubric's components: ``task`` (+1 for doing the step that
    is due, +1 more for closing a cleanly finished task, -0.5 for no progress),
    ``grounding`` (-1 per invented id, amount or date), ``politeness`` (small bonus for
    courtesy and empathy, -1.5 per rude phrase), ``conciseness`` (-0.025 per word over
    40), ``safety`` (-2 per skipped verification, off-policy promise, privacy leak,
    missing disclosure or broken critical rule of the domain; -4 in medical triage, where
    safety dominates), ``repetition`` and ``conduct`` (-1 per broken minor rule, such as
    jargon in financial advice). On customer service the scripted expert earns about +7
    per episode, a random agent about -4. Whatever the training reward,
    ``info["gold_reward"]`` carries the gold model's score (``gold``, default the full
    rubric; on the tokens and text interfaces the rubric plus ``fluency``, the reference
    LM's likelihood and a repeated-phrase penalty, so keyword stuffing does not pay) so
    over-optimisation of a proxy shows.

    Tokens interface: the reply's reward comes at its last token; tokens inside a reply
    earn 0, plus ``kl_coef * log pi_ref(token | window)`` with KL shaping (reported as
    ``info["ref_logprob"]``). The agent's own ``-kl_coef * log pi(token)`` completes the
    KL-regularised return (``rlhf_agents.lm_policy.KLPenaltyCallback``).

    ## Starting State

    ``reset(seed=...)`` draws the scenario (task, user profile, order, the answers of the
    company's systems, persona) from the env's random generator; the first observation
    holds the user's opening message and the first K candidates. Everything in an
    episode is reproducible from the seed alone.

    ``reset(seed=s, options={"scenario_seed": c})`` draws the scenario from ``c`` and
    everything else (the user's wording, candidate order, ...) from ``s``: several tries
    at the same scenario, as pass^k reliability needs (``agents/metrics.py``).

    ## Episode End

    Terminated when the user ends the conversation: after the agent offers further help
    once the task is done (success if every required step was done without a critical
    violation), or when the user runs out of patience and leaves. Truncated after 20 turns
    (``max_episode_steps`` of the registered ids; 20 x 40 token steps on the tokens id).

    ## Info

    Every step: ``reply`` (the text sent), ``user`` (the user's answer), ``system`` (lines
    from the company's systems), ``reward_components``, ``gold_reward``, ``policy_step``
    (the step that was due) and ``step_completed``, ``reply_violations`` (critical
    violations in this reply), and ``success``, ``satisfaction`` (0 to 1), ``steps_done``,
    ``steps_missed``, ``violations`` and ``user_left``, which describe the episode so far
    and are final at its end.
    ``reset`` returns ``domain``, ``flow``, ``subflow`` and ``persona``.
    Tokens interface: every step also ``token`` (and ``ref_logprob`` with KL shaping,
    ``invalid_token`` for a masked one); steps inside a reply carry ``partial_reply``,
    ``gold_reward`` 0 and the episode entries, not the reply's.

    ## Arguments

    - ``domain``: ``"customer_service"`` (default), ``"finance"``, ``"medical"``,
      ``"tiny"`` (a two-task test domain) or the path of a domain folder of your own.
    - ``interface``: ``"select"`` (default), ``"tokens"`` or ``"text"``.
    - ``reward``: reward spec: a registered name (``"rubric"``, ``"rubric:warm"``), a
      learned model's checkpoint (``"learned:runs/rm"``, made absolute in ``env.spec``),
      a ``{spec: weight}`` mix, a ``RewardModel`` instance or a function
      ``f(exchange) -> float``. Strings and dicts keep the env spec serialisable;
      instances and functions do not.
    - ``gold``: the reward spec reported as ``info["gold_reward"]`` (default ``"rubric"``;
      ``{"rubric": 1.0, "fluency": 1.0}`` on the tokens and text interfaces).
    - ``num_candidates``: K for the select interface (default 6).
    - ``encoding_dim``: D, the size of each text encoding (select, default 256).
    - ``lm``: tokens: the reference LM's folder (default: the project's, built on first
      use and cached; ``RLHF_ENVS_LM`` overrides; any local Hugging Face causal LM
      folder works).
    - ``kl_coef``: tokens: beta of the KL shaping (default 0: off, no reference forward).
    - ``context_length``: tokens: L, the observation window (default 256, or the
      LM's positions if fewer).
    - ``max_reply_tokens``: tokens: the reply length cap (default 40).
    - ``invalid_token_penalty``: tokens: reward of a masked token (default -1).
    - ``max_reply_chars``, ``max_context_chars``: text: the longest reply (default
      1000) and observation (default 4000).
    An argument of another interface than the chosen one raises ``ValueError``.
    - ``subflows``: restrict episodes to these task ids (default: all of the domain's).
    - ``render_mode``: ``"ansi"`` (``render()`` returns the transcript), ``"human"``
      (prints each turn) or ``"rgb_array"`` (the latest turns drawn as a chat window, for
      video recorders; SB3's ``make_vec_env`` asks for this mode by default).

    ## Registered Configurations

    - ``RLHF-Chat-v0``: customer service, select interface.
    - ``RLHF-ChatTokens-v0``: customer service, tokens interface.
    - ``RLHF-ChatText-v0``: customer service, text interface.
    - ``RLHF-Finance-v0``, ``RLHF-FinanceTokens-v0``, ``RLHF-FinanceText-v0``: financial
      advice, select, tokens and text interfaces.
    - ``RLHF-Medical-v0``, ``RLHF-MedicalTokens-v0``, ``RLHF-MedicalText-v0``: medical
      triage, select, tokens and text interfaces.
    - ``RLHF-Tiny-v0``: the tiny library domain, select interface, 3 candidates.

    ``gymnasium.make_vec(id, num_envs=N)`` builds :class:`~rlhf_envs.vector.DialogueVectorEnv`,
    which scores all N replies of a step in one reward-model call.

    ## Version History

    - v0: initial release.
    """

    metadata = {"render_modes": ["ansi", "human", "rgb_array"], "render_fps": 1}

    def __init__(
        self,
        domain: str = "customer_service",
        interface: str = "select",
        reward: RewardSpec = "rubric",
        gold: RewardSpec | None = None,
        num_candidates: int | None = None,
        encoding_dim: int | None = None,
        lm: str | None = None,
        kl_coef: float | None = None,
        context_length: int | None = None,
        max_reply_tokens: int | None = None,
        invalid_token_penalty: float | None = None,
        max_reply_chars: int | None = None,
        max_context_chars: int | None = None,
        subflows: Sequence[str] | None = None,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.render_mode = render_mode
        # (a folder path is made absolute, so pickled envs and workers started elsewhere
        # find the same domain)
        self.domain = get_domain(domain)
        if subflows is not None:
            subflows = (subflows,) if isinstance(subflows, str) else tuple(subflows)
            unknown = [s for s in subflows if s not in self.domain.policy.subflows]
            if unknown or not subflows:
                raise ValueError(
                    f"subflows {unknown or list(subflows)} not in domain {self.domain.name!r}; "
                    f"available: {', '.join(self.domain.subflow_ids)}"
                )
        self.subflows = subflows
        options = {
            "num_candidates": num_candidates,
            "encoding_dim": encoding_dim,
            "lm": lm,
            "kl_coef": kl_coef,
            "context_length": context_length,
            "max_reply_tokens": max_reply_tokens,
            "invalid_token_penalty": invalid_token_penalty,
            "max_reply_chars": max_reply_chars,
            "max_context_chars": max_context_chars,
        }
        self.interface = make_interface(
            interface, **{k: v for k, v in options.items() if v is not None}
        )
        self.reward_model = make_reward_model(reward)
        self.gold_model = make_reward_model(default_gold(interface, lm) if gold is None else gold)
        # Checked against this env's own domain now (a persona the domain lacks, a bad
        # rubric.yaml), not at the first step.
        self.reward_model.check_domain(self.domain)
        self.gold_model.check_domain(self.domain)
        self.action_space = self.interface.action_space
        self.observation_space = self.interface.observation_space
        self.user = UserSimulator(self.domain)
        self.state: DialogueState | None = None
        self.mood: Mood | None = None
        self._printed = 0
        self._pending: Exchange | None = None

    # --- the Gymnasium API -------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        scenario_rng = rng
        _check_reset_options(options)
        if options and options.get("scenario_seed") is not None:
            scenario_seed = options["scenario_seed"]
            if not isinstance(scenario_seed, (int, np.integer)) or isinstance(scenario_seed, bool):
                raise TypeError(f"options['scenario_seed'] must be an int, got {scenario_seed!r}")
            scenario_rng = np.random.default_rng(int(scenario_seed))
        scenario = self.domain.sample_scenario(scenario_rng, self.subflows)
        self.state = DialogueState.start(self.domain, scenario, self.user.opening(scenario, rng))
        self.mood = self.user.mood(scenario)
        self.interface.reset()
        self._printed = 0
        self._pending = None
        obs = self.interface.observe(self.state, rng)
        if self.render_mode == "human":
            self._print_new_turns()
        return obs, scenario.summary()

    def step(self, action: Any) -> StepResult:
        exchange = self.begin_turn(action)
        if exchange is None:
            return self.continue_turn()
        rewards, components, gold = score_turns(self.reward_model, self.gold_model, (exchange,))
        return self.finish_turn(
            float(rewards[0]), {k: float(v[0]) for k, v in components.items()}, float(gold[0])
        )

    # A step in two halves, so a vector env can score many envs' replies in one batched
    # reward-model call between them (rlhf_envs/vector.py).

    def begin_turn(self, action: Any) -> Exchange | None:
        """First half of :meth:`step`: turn ``action`` into the reply and return it in
        context, to be scored; :meth:`finish_turn` completes the step. Returns ``None``
        when the reply is not finished (the tokens interface mid-reply): then
        :meth:`continue_turn` completes the step."""
        state = self.state
        if state is None:
            raise RuntimeError("call reset() before step()")
        if state.ended:
            raise RuntimeError(
                "the conversation has ended (terminated=True); call reset() to start a new one"
            )
        reply = self.interface.reply(action, state)
        if reply is None:
            self._pending = None
            return None
        self._pending = Exchange(
            scenario=state.scenario, history=state.history, reply=reply, state=state
        )
        return self._pending

    def continue_turn(self) -> StepResult:
        """A step inside a reply (tokens interface): no reply to score yet; the reward is
        the interface's shaping (KL term or masked-token penalty)."""
        state, mood = self.state, self.mood
        assert state is not None and mood is not None  # (begin_turn() checked: reset() ran)
        info = {
            **self.interface.step_info,
            "partial_reply": self.interface.partial_reply(),
            "gold_reward": 0.0,
            "satisfaction": mood.satisfaction,
            **state.summary(),
        }
        obs = self.interface.observe(state, self.np_random)
        return obs, float(self.interface.shaping), False, False, info

    def finish_turn(self, reward: float, components: dict[str, float], gold: float) -> StepResult:
        """Second half of :meth:`step`: the user answers the reply of :meth:`begin_turn`,
        scored ``reward`` (with its ``components``) and ``gold``; returns step's 5-tuple."""
        exchange, self._pending = self._pending, None
        if exchange is None:
            raise RuntimeError("finish_turn() needs a begin_turn() first")
        state, reply, mood = exchange.state, exchange.reply, self.mood
        # (begin_turn() made the exchange in the state reset() started, with its mood)
        assert state is not None and mood is not None
        assessment = state.assess(reply)
        user = self.user.respond(state, assessment, mood, self.np_random)
        self.state = new = state.after(reply, assessment, user.text, user.ended)
        obs = self.interface.observe(new, self.np_random)
        info = {
            **self.interface.step_info,
            "reply": reply,
            "user": user.text,
            "system": tuple(t.text for t in new.history[len(state.history) + 2 :]),
            "reward_components": components,
            "gold_reward": gold,
            "policy_step": assessment.step.id if assessment.step else None,
            "step_completed": assessment.completes,
            "reply_violations": assessment.violations,
            "satisfaction": mood.satisfaction,
            "user_left": user.left,
            **new.summary(),
        }
        if self.render_mode == "human":
            self._print_new_turns()
        return obs, reward + float(self.interface.shaping), bool(user.ended), False, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self.transcript()
        if self.render_mode == "rgb_array":
            return render_transcript_image(self.state.history if self.state else ())
        if self.render_mode == "human" and self.state is not None:
            self._print_new_turns()  # step already prints each turn; this catches up only
        return None

    # --- extras for baselines, tests and people ----------------------------------------

    def transcript(self) -> str:
        """The conversation so far, one ``Speaker: text`` line per turn."""
        if self.state is None:
            return ""
        return format_transcript(self.state.history)

    def expert_action(self) -> Any:
        """The scripted expert's action now (for the select interface: the index of the
        policy-correct candidate). A baseline, not part of what a learning agent sees."""
        if self.state is None:
            raise RuntimeError("call reset() before expert_action()")
        return self.interface.expert_action(self.state, self.np_random)

    def action_masks(self) -> np.ndarray:
        """Allowed actions now, for sb3-contrib's ``MaskablePPO`` (tokens interface: all
        but padding and special tokens; select: every candidate)."""
        masks = getattr(self.interface, "action_masks", None)
        if masks is not None:
            return masks()
        space = self.action_space
        assert isinstance(space, spaces.Discrete)  # (select: the other interfaces have masks)
        return np.ones(space.n, dtype=bool)

    @property
    def kl_coef(self) -> float:
        """beta of the KL shaping (0 unless the tokens interface has one)."""
        return float(getattr(self.interface, "kl_coef", 0.0))

    @property
    def reference_lm(self) -> ReferenceLM | None:
        """The reference LM of the tokens interface (``None`` for other interfaces)."""
        return getattr(self.interface, "lm", None)

    def _print_new_turns(self) -> None:
        assert self.state is not None  # (called once reset() has started the episode)
        history = self.state.history
        # (format_transcript: a turn's own line breaks are indented, never a new speaker)
        if len(history) > self._printed:
            print(format_transcript(history[self._printed :]))
        self._printed = len(history)
