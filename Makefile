# Both commands set themselves up on a fresh machine: a virtual environment in
# .venv with the CPU build of torch (torch==2.13.0, a wheel this machine has on
# disk; any other torch request would pull CUDA packages) and this project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Ray RLlib pins its own gymnasium (1.2.2 for ray 2.60): it gets a virtual environment
# of its own, where the RLlib test and the env/vector tests run against that gymnasium.
RLLIB_VENV ?= .venv-rllib
RLLIB_STAMP := $(RLLIB_VENV)/.installed
# verifiers 0.4 pins mcp 2.0, OpenEnv 0.10 (in .venv) needs mcp < 2: the verifiers
# environment (rlhf_verifiers) and its test get a virtual environment of their own.
VF_VENV ?= .venv-verifiers
VF_STAMP := $(VF_VENV)/.installed

# The labelling page's browser tests drive Debian's Chromium (Playwright never downloads
# its own browser here); installed when missing, as root or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-lm check lint typecheck browser rllib-venv verifiers-venv test-slow test-properties label-soak bench compare cross-domain proxy-vs-gold build-lm lm-rlhf train-lm overoptimisation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(RLLIB_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RLLIB_VENV)
	$(RLLIB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RLLIB_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(RLLIB_VENV)/bin/python -m pip install --quiet -e '.[rllib,test]'
	touch $(RLLIB_STAMP)

$(VF_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VF_VENV)
	$(VF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VF_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VF_VENV)/bin/python -m pip install --quiet -e '.[verifiers]' pytest pytest-timeout
	touch $(VF_STAMP)

demo: $(STAMP)
	$(BIN)/rlhf-envs demo

browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "could not install chromium: the browser tests will be skipped"; }

# Lint and format (ruff, the rules in pyproject.toml), then the type checker over the package.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The edit loop: lint and the fast tests (neither slow nor integration; see pyproject.toml).
check: lint
	$(BIN)/python -m pytest -n 2 --dist worksteal -m "not slow and not integration"

# The small LM of the tests (about a minute on 2 cores, once per cache), built as a
# set-up step of its own so that no test worker waits on it.
test-lm: $(STAMP)
	$(BIN)/python tests/conftest.py

test: $(STAMP) $(RLLIB_STAMP) $(VF_STAMP) browser lint typecheck test-lm
	$(BIN)/python -m pytest -n 2 --dist worksteal
	$(RLLIB_VENV)/bin/python -m pytest -n 2 --dist worksteal tests/test_rllib.py tests/test_vector.py tests/test_sb3.py tests/test_envs.py
	$(VF_VENV)/bin/python -m pytest -p no:cacheprovider tests/test_verifiers.py

rllib-venv: $(RLLIB_STAMP)

verifiers-venv: $(VF_STAMP)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -s

# The property tests with 10,000 examples each (make test runs a few dozen each).
test-properties: $(STAMP)
	HYPOTHESIS_PROFILE=slow $(BIN)/python -m pytest tests/test_properties.py

# The label server under 8 annotators, expiring leases and a SIGKILL (README "Leases").
label-soak: $(STAMP)
	$(BIN)/python benchmarks/label_soak.py

# The benchmark suite (tables + results/bench/benchmarks.csv), then the LM policy's PPO speed.
bench: $(STAMP)
	$(BIN)/python benchmarks/suite.py
	$(BIN)/python benchmarks/lm_policy_speed.py

# Every SB3 and sb3-contrib agent and the baselines, 3 seeds (about 20 minutes on 2 cores).
compare: $(STAMP)
	$(BIN)/rlhf-envs compare --agents random,expert,best-of-n,ppo,ppo-mlp,a2c,dqn,maskable-ppo,recurrent-ppo \
		--envs RLHF-Chat-v0 --seeds 3 --steps 100000 --scenarios 100 --tries 4 --out results/compare

# PPO trained on each domain (and on all three), evaluated zero-shot on every domain.
cross-domain: $(STAMP)
	$(BIN)/python benchmarks/cross_domain.py --out results/cross_domain

proxy-vs-gold: $(STAMP)
	$(BIN)/python benchmarks/proxy_vs_gold.py

build-lm: $(STAMP)
	$(BIN)/rlhf-envs build-lm

lm-rlhf: $(STAMP)
	$(BIN)/python benchmarks/lm_rlhf.py

# GRPO with TRL on the text ids (README "What GRPO reaches"; one core each, side by side).
train-lm: $(STAMP)
	$(BIN)/rlhf-envs train-lm --env RLHF-ChatText-v0 --threads 1 --out docs/train_lm/chat & \
	$(BIN)/rlhf-envs train-lm --env RLHF-FinanceText-v0 --threads 1 --out docs/train_lm/finance & \
	wait

overoptimisation: $(STAMP)
	$(BIN)/python benchmarks/overoptimisation.py --states 80 --rl-steps 60 --rl-every 20 --rl-states 24 --threads 1

clean:
	rm -rf $(VENV) $(RLLIB_VENV) $(VF_VENV)
