# The two commands of the README.
.PHONY: run test bench

run:  ## install and run the gateway on http://127.0.0.1:8080
	bash scripts/run.sh

test:  ## install what the tests need and run ruff, mypy and pytest
	bash scripts/test.sh

bench:  ## the ingest benchmark (results in bench/results/)
	.venv/bin/python bench/ingest.py
