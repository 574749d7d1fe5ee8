# The two commands of the README. Both set everything up by themselves (idempotent).
.PHONY: demo test setup

demo: ## the simulated procedure through the real ROS 2 graph; report in runs/demo/
	bash scripts/setup.sh
	.venv/bin/tavi-perception demo

test: ## ruff + the whole test suite (what CI runs)
	bash scripts/test.sh

setup: ## only the set-up (.venv, tavi_msgs, editable install)
	bash scripts/setup.sh
