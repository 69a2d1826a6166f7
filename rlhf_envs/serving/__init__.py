"""Network servers over the suite: ``rlhf-envs serve-lm`` (an OpenAI-compatible
chat-completions endpoint over a local causal LM) and ``rlhf-envs serve`` (any
registered id as an OpenEnv environment server)."""
