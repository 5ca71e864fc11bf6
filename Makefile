# The README's commands. Each target creates .venv when missing and installs into it first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export YOLO_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home

TEST_DEBS := ffmpeg rtsp-server-perl chromium chromium-driver postgresql
TEST_DEBS_LEAN := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
LS_VENV := var/labelstudio/venv
LS_STAMP := $(LS_VENV)/.installed-stamp
LS_VERSION := 1.23.2
LS_DATA ?= $(CURDIR)/var/labelstudio/data
LS_PORT ?= 8080

.PHONY: install demo demo-cluster test test-e2e test-labelstudio lint ui bench clean labelstudio labelstudio-install

$(STAMP): pyproject.toml edge_agent/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# pip, not uv: torch==2.14.1 / torchvision==0.29.1 come from this machine's local wheels.
	# --no-compile: byte-compiling all 28,000 installed .py files took 285 s of the install; Python
	# compiles the modules a run imports on first use instead.
	$(PY) -m pip install --disable-pip-version-check --no-compile -q -e ./edge_agent -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Label Studio pins its own Django stack: it lives in its own venv, never the project's (~1 GB).
$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --disable-pip-version-check -q label-studio==$(LS_VERSION)
	# a migrated empty database the tests copy, so each test server starts in seconds, not minutes
	rm -rf var/labelstudio/template && mkdir -p var/labelstudio/template
	LABEL_STUDIO_BASE_DATA_DIR=$(CURDIR)/var/labelstudio/template LATEST_VERSION_CHECK=false \
		$(LS_VENV)/bin/label-studio version >/dev/null
	touch $(LS_STAMP)

labelstudio-install: $(LS_STAMP)

# Label Studio on 127.0.0.1:$(LS_PORT), data under var/labelstudio; a local admin and an API token
# made on the first start without prompts. Legacy tokens are enabled: since 1.20 a new organization
# otherwise accepts only personal access tokens and `Token <user token>` gets 401.
labelstudio: labelstudio-install
	mkdir -p $(LS_DATA) && chmod 700 $(LS_DATA)
	test -e $(LS_DATA)/label_studio.sqlite3 || cp var/labelstudio/template/label_studio.sqlite3 $(LS_DATA)/
	test -s $(LS_DATA)/.api_key || $(PYTHON) -c 'import secrets; print(secrets.token_hex(20))' > $(LS_DATA)/.api_key
	test -s $(LS_DATA)/.password || $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(16))' > $(LS_DATA)/.password
	@echo "export LABEL_STUDIO_URL=http://127.0.0.1:$(LS_PORT) LABEL_STUDIO_API_KEY=$$(cat $(LS_DATA)/.api_key)"
	@echo "admin: admin@flywheel.local, password in $(LS_DATA)/.password"
	LABEL_STUDIO_BASE_DATA_DIR=$(LS_DATA) LABEL_STUDIO_USERNAME=admin@flywheel.local \
		LABEL_STUDIO_PASSWORD="$$(cat $(LS_DATA)/.password)" LABEL_STUDIO_USER_TOKEN="$$(cat $(LS_DATA)/.api_key)" \
		LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
		LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
		$(LS_VENV)/bin/label-studio start --host 127.0.0.1 --internal-host 127.0.0.1 --port $(LS_PORT) \
		--no-browser --enable-legacy-api-token

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: install lint
	# Debian packages some tests need; without them those tests skip and say why. The camera tests
	# serve real HTTP and RTSP streams on 127.0.0.1: ffmpeg, rtsp-server-perl (RTP over UDP) and
	# GStreamer's RTSP server (RTP over TCP, run by the system python3); the UI test drives headless
	# Chromium through chromedriver (never a browser download); the cluster deployment's tests run its
	# Dagster instance on a real PostgreSQL (server binaries under /usr/lib/postgresql/<major>/bin).
	dpkg -s $(TEST_DEBS) $(TEST_DEBS_LEAN) >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEBS) \
		     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_DEBS_LEAN); } \
		|| echo "some of $(TEST_DEBS) $(TEST_DEBS_LEAN) unavailable: the tests that need them will skip"
	$(PY) -m pytest -m "not e2e" --durations=25  # the slowest tests, to keep the 20-minute budget in view

# The whole-system runs (the demo's turns, the UI and a daemon backfill, the Ray/Postgres cluster):
# several minutes each, past `make test`'s 20-minute budget together; `.ci/run` runs them after it.
test-e2e: test
	$(PY) -m pytest -m e2e --durations=10

# The Label Studio round trip against a real server. Not in `make test`: Label Studio's own venv
# (~1 GB, its Django stack) takes minutes to install and migrate, past that target's 20-minute
# budget; `.ci/run` runs this target after `make test`.
test-labelstudio: install labelstudio-install
	$(PY) -m pytest -m labelstudio

demo: install
	# dagster.yaml: the run queue (one ingest per capture day, one training at a time)
	$(PY) -m jobs.instance $(DAGSTER_HOME)
	$(PY) -m jobs.demo

# One turn (after the bootstrap turn 0) on the cluster deployment, on this machine: SeaweedFS as S3
# (lake + LanceDB), PostgreSQL for the instance, a Ray head + a `train` worker (`ray start`), all on
# free loopback ports and temp dirs, stopped at the end (jobs/cluster_env.py). Fresh each time.
demo-cluster: install
	dpkg -s postgresql >/dev/null 2>&1 || { apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	$(PY) -m jobs.cluster_env $(PY) -m jobs.demo --deployment cluster --turns 1 --fresh \
		--out var/demo-cluster $(DEMO_ARGS)

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
