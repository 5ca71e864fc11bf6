# The README's commands. Each target creates .venv when missing and installs into it first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export YOLO_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home

.PHONY: install demo test lint ui bench clean

$(STAMP): pyproject.toml edge_agent/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# pip, not uv: torch==2.14.1 / torchvision==0.29.1 come from this machine's local wheels.
	$(PY) -m pip install --disable-pip-version-check -q -e ./edge_agent -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: install lint
	# The camera tests serve real HTTP and RTSP streams on 127.0.0.1: ffmpeg and rtsp-server-perl
	# (Debian packages); without them those tests skip and say why.
	command -v ffmpeg >/dev/null 2>&1 && command -v rtsp-server-perl >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq ffmpeg rtsp-server-perl; } \
		|| echo "ffmpeg / rtsp-server-perl unavailable: the camera stream tests will skip"
	$(PY) -m pytest

demo: install
	# dagster.yaml: the run queue (one ingest per capture day, one training at a time)
	$(PY) -m jobs.instance $(DAGSTER_HOME)
	$(PY) -m jobs.demo

ui: install
	$(PY) -m jobs.instance $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: install
	# The capture benchmark compares against the ffmpeg CLI (Debian package) on the same frames.
	command -v ffmpeg >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ffmpeg; } \
		|| echo "ffmpeg unavailable: the capture-throughput ratio will be reported as missing"
	$(PY) -m benchmarks.run_all

clean:
	rm -rf var .pytest_cache
