# pyworkflow tasks. `pip install -e ".[dev]"` puts `just` on PATH (the rust-just package).

python := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }

# List the recipes
default:
    @just --list

# The whole test suite. Kafka tests get an apache/kafka container when Docker answers, else a
# local java broker (its jars fetched with Maven on first use); KAFKA_BOOTSTRAP_SERVERS wins.
test *ARGS:
    {{python}} -m pytest {{ARGS}}

# The test suite on a compiled wheel (setup.py compiles the hot path with mypyc): its own venv,
# .venv-compiled/, and a copy of the tree without the sources, so that the wheel is what runs
test-compiled *ARGS:
    test -x .venv-compiled/bin/python || python3 -m venv .venv-compiled
    rm -rf build .compiled-tests && mkdir .compiled-tests
    .venv-compiled/bin/pip install -q --disable-pip-version-check ".[dev]"
    rm -rf build
    git ls-files --cached --others --exclude-standard -z | grep -zv '^pyworkflow/' | xargs -0 cp --parents -t .compiled-tests
    cd .compiled-tests && PYWORKFLOW_EXPECT_COMPILED=1 ../.venv-compiled/bin/python -m pytest {{ARGS}}

# The web dashboard on the local storage (pip install -e ".[dashboard]")
dashboard *ARGS:
    {{python}} -m pyworkflow dashboard {{ARGS}}

# The dashboard's browser test alone (Debian chromium + chromedriver), its screenshots in docs/
browser-test:
    DASHBOARD_SCREENSHOTS=docs {{python}} -m pytest -m browser tests/dashboard/test_browser.py

# Lint and type-check
lint:
    {{python}} -m ruff check pyworkflow tests benchmarks examples
    {{python}} -m mypy pyworkflow

# The main job on the embedded default (file storage under ./workflow_data, no broker)
demo:
    {{python}} -m pyworkflow demo

# Benchmarks: steps per second on each backend, the cost of quiet logging, the actor runtime, Kafka workers (latency, throughput, RSS, takeover)
bench:
    {{python}} benchmarks/bench_memory.py
    {{python}} benchmarks/bench_file.py
    {{python}} benchmarks/bench_kafka.py
    {{python}} benchmarks/bench_logging.py
    {{python}} benchmarks/bench_floor.py
    {{python}} benchmarks/bench_actors.py
    {{python}} benchmarks/bench_workers.py
    {{python}} benchmarks/bench_takeover.py
    {{python}} benchmarks/bench_dashboard.py

# The actor runtime alone: throughput vs the inline runtime, timer lag, RSS of 100,000 suspended runs (--quick: 10,000)
bench-actors *ARGS:
    {{python}} benchmarks/bench_actors.py {{ARGS}}

# Compare with the reference pyworkflow-engine 0.4.0 (own venv .bench-venv-ref/) as users install
# both: ours from its wheel (compiled, setup.py) in .bench-venv-ours/; add --update-readme
# benchmarks/README.md; --ours-python .venv/bin/python measures the pure (editable) tree
bench-compare *ARGS:
    test -x .bench-venv-ref/bin/python || {{python}} -m venv .bench-venv-ref
    .bench-venv-ref/bin/python -m pip install --quiet --disable-pip-version-check pyworkflow-engine==0.4.0
    test -x .bench-venv-ours/bin/python || {{python}} -m venv .bench-venv-ours
    rm -rf build && .bench-venv-ours/bin/python -m pip install --quiet --disable-pip-version-check . && rm -rf build
    {{python}} benchmarks/compare.py --ref-python .bench-venv-ref/bin/python --ours-python .bench-venv-ours/bin/python {{ARGS}}

# Start a local Kafka broker (KRaft, one node) for the examples; Ctrl-C stops it
kafka:
    {{python}} -m pyworkflow.testing kafka run
