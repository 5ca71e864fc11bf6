# The README's commands. Each target creates .venv when missing and installs into it first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export YOLO_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home

TEST_DEBS := ffmpeg rtsp-server-perl chromium chromium-driver
TEST_DEBS_LEAN := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad

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
	# Debian packages some tests need; without them those tests skip and say why. The camera tests
	# serve real HTTP and RTSP streams on 127.0.0.1: ffmpeg, rtsp-server-perl (RTP over UDP) and
	# GStreamer's RTSP server (RTP over TCP, run by the system python3); the UI test drives headless
	# Chromium through chromedriver (never a browser download).
	dpkg -s $(TEST_DEBS) $(TEST_DEBS_LEAN) >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEBS) \
		     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_DEBS_LEAN); } \
		|| echo "some of $(TEST_DEBS) $(TEST_DEBS_LEAN) unavailable: the tests that need them will skip"
	$(PY) -m pytest

demo: install
	mkdir -p $(DAGSTER_HOME)
	$(PY) -m jobs.demo

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: install
	# The capture benchmark compares against the ffmpeg CLI (Debian package) on the same frames.
	command -v ffmpeg >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ffmpeg; } \
		|| echo "ffmpeg unavailable: the capture-throughput ratio will be reported as missing"
	$(PY) -m benchmarks.run_all

clean:
	rm -rf var .pytest_cache
