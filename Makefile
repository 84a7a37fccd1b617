# declinemon — the two commands a new machine needs:
#   make demo   the live pipeline with everything in-process (Kafka broker, loadgen, detection, /alerts)
#               and a real ClickHouse server storing every event (the engine library is fetched once)
#   make test   everything CI checks (starts its own Kafka broker from Maven jars)
GO      ?= go
OUT     ?= $(CURDIR)/.demo
FUZZTIME ?= 20s
FUZZTIME_SHORT ?= 5s
KAFKA_LIBS ?= $(HOME)/.cache/declinemon/kafka-3.9.1/libs
# Integration tests start a real broker; make test must not skip them.
export DECLINEMON_KAFKA_REQUIRED = 1
export DECLINEMON_KAFKA_LIBS = $(KAFKA_LIBS)
export DECLINEMON_ALERTMANAGER_REQUIRED = 1
# ClickHouse 26.7 as a library (chdb) from npm, for the storage tests.
CHDB_DIR ?= $(HOME)/.cache/declinemon/chdb-26.7.3
CHDB_LIB_PATH ?= $(CHDB_DIR)/package/libchdb.so
export CHDB_LIB_PATH
# The same library serves a real ClickHouse server (internal/chserver):
# make test must not skip the tests that need one.
export DECLINEMON_CLICKHOUSE_REQUIRED = 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: world browser-test screenshots chromium stack system-test bench-storage replay-demo test lint unit race chaos fuzz bench bench-kafka demo build score clean kafka-jars tools check-deploy chdb-lib storage-chdb

test: lint kafka-jars chdb-lib tools check-deploy unit world storage-chdb race chaos system-test browser-test fuzz

chdb-lib:
	@test -f $(CHDB_LIB_PATH) || { mkdir -p $(CHDB_DIR) && cd $(CHDB_DIR) && \
	  npm pack --silent @chdb/lib-linux-x64-gnu@26.7.3-stable.1 && tar xzf chdb-lib-linux-x64-gnu-26.7.3-stable.1.tgz && \
	  rm chdb-lib-linux-x64-gnu-26.7.3-stable.1.tgz; }

# Schema, rollups, dedup and cookbook queries on a real ClickHouse engine.
storage-chdb: chdb-lib
	$(GO) test -count=1 -tags chdb ./storage/... ./deploy/...

# The ops console in a real browser: `declinemon demo` (with its ClickHouse
# server) watched by Debian's headless Chromium; screenshots in $(OUT)/screenshots.
chromium:
	@command -v chromium >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

browser-test: chromium chdb-lib
	DECLINEMON_BROWSER_REQUIRED=1 DECLINEMON_SCREENSHOTS=$(OUT)/screenshots \
	  $(GO) test -count=1 -tags demo -run TestConsoleInBrowser ./cmd/declinemon/

# The README's console screenshots.
screenshots: chromium chdb-lib
	DECLINEMON_BROWSER_REQUIRED=1 DECLINEMON_SCREENSHOTS=$(CURDIR)/docs/console \
	  $(GO) test -count=1 -tags demo -run TestConsoleInBrowser ./cmd/declinemon/

# promtool, amtool and a real Alertmanager for the tests, from Debian.
tools:
	@command -v promtool >/dev/null && command -v amtool >/dev/null && command -v prometheus-alertmanager >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null; }

check-deploy: tools
	promtool check rules deploy/prometheus/rules.yml
	promtool test rules deploy/prometheus/rules_test.yml
	promtool check config deploy/prometheus/prometheus.yml
	amtool check-config deploy/alertmanager/alertmanager.yml

# Apache Kafka 3.9.1 broker jars from Maven Central, cached.
kafka-jars:
	@ls $(KAFKA_LIBS)/kafka_2.13-*.jar >/dev/null 2>&1 || \
	  mvn -q -f deploy/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(KAFKA_LIBS)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

# Detection on days written from how fleets behave (alerting/scenario,
# world*.go: heavy-tailed volumes, flaky readers, ramps, staged rollouts,
# a carrier failing in one city, a silent region with its backlog, wrong
# clocks, late delivery, a quiet week on 10,000 terminals), replayed
# through the real pipeline; every #14 Must-show is checked, the quality
# table printed. About 3 minutes.
world:
	@mkdir -p $(OUT)
	@DECLINEMON_WORLD=1 $(GO) test -count=1 -timeout 20m -run TestWorldMustShows -v ./pipeline/ > $(OUT)/world.log 2>&1; \
	  status=$$?; grep -v '^=== RUN' $(OUT)/world.log; exit $$status

# kill -9, broker outage, late topic, oversized message, standby takeover,
# ClickHouse stopped or killed for 60 s, kill -9 while storing: against the
# real broker, ClickHouse server and binary; alone, so its timings are its own.
chaos: kafka-jars chdb-lib
	DECLINEMON_CHAOS=1 DECLINEMON_CHAOS_REPORT=$(CURDIR)/.chaos-report.md $(GO) test -count=1 -timeout 20m ./internal/chaos/
	@cat $(CURDIR)/.chaos-report.md

# The race detector where goroutines meet: the Kafka runner and the commands.
race:
	$(GO) test -count=1 -race -run 'TestRun|TestScaleOut|TestMerger|TestExitCodes|TestPermanent|TestOnePath' ./pipeline/... ./cmd/...

# Every entry point that reads outside input: events, rules file, config
# file, HTTP requests, detector checkpoints. Go 1.26's fuzz coordinator can
# report a bare "context deadline exceeded" when -fuzztime ends while a
# worker is mid-call (go.dev/issue/75804, fixed in Go 1.27): such a run,
# with no failing input written, is run once more; a real finding writes
# its input to testdata/fuzz and fails at once.
FUZZ = fuzz() { \
	  out=$$($(GO) test -run '^$$' -fuzz "^$$1\$$" -fuzztime $$2 $$3 2>&1); st=$$?; echo "$$out"; \
	  if [ $$st -ne 0 ] && ! echo "$$out" | grep -q 'Failing input written' && echo "$$out" | grep -q 'context deadline exceeded'; then \
	    echo "fuzz: $$1 stopped at its deadline without a finding (go.dev/issue/75804); running it again"; \
	    $(GO) test -run '^$$' -fuzz "^$$1\$$" -fuzztime $$2 $$3; st=$$?; \
	  fi; return $$st; }

fuzz:
	@$(FUZZ); fuzz FuzzDecode $(FUZZTIME) ./ingest && \
	  fuzz FuzzRules $(FUZZTIME_SHORT) ./classify && \
	  fuzz FuzzLoadConfig $(FUZZTIME_SHORT) ./pipeline && \
	  fuzz FuzzHandler $(FUZZTIME_SHORT) ./internal/ops && \
	  fuzz FuzzRestore $(FUZZTIME_SHORT) ./alerting

bench:
	$(GO) test -run '^$$' -bench 'Decode|Classify|Path' -benchmem ./ingest ./classify ./pipeline
	$(GO) test -run '^$$' -bench 'BenchmarkEngine' -benchtime 1x ./alerting
	$(GO) test -run '^$$' -bench 'BenchmarkEngineObserve' -benchtime 3000000x ./alerting

bench-kafka: kafka-jars
	$(GO) test -run '^$$' -bench 'BenchmarkRunKafka$$' -benchtime 3x ./pipeline
	$(GO) test -run '^$$' -bench 'BenchmarkCheckpointKafka1M' -benchtime 3x -benchmem ./pipeline

# The docker-compose topology without Docker: Kafka, ClickHouse, Alertmanager,
# Prometheus and declinemon as local processes, loadgen playing a day.
# Prints the URLs; Ctrl-C stops it. STACK_FLAGS=--loop keeps producing.
stack: kafka-jars chdb-lib tools
	$(GO) build -o bin/stack ./internal/stack/cmd/stack
	./bin/stack $(STACK_FLAGS)

# The compose topology as a system test (about 2 minutes): declinemon
# started before its topic, a day with incidents, then Alertmanager (with
# inhibition), ClickHouse rows and rollups against the stream, every
# dashboard query, Prometheus recording rules, readiness and lag.
system-test: kafka-jars chdb-lib tools
	DECLINEMON_SYSTEM=1 $(GO) test -count=1 -timeout 15m -v -run TestSystem ./internal/stack/

# run into a real ClickHouse server (detection and storage in one consumer,
# and an ingest instance's two members), on a fleet day and on a standing
# outage, from the start until every event is queryable; then the insert
# alone and where the server's CPU goes.
bench-storage: kafka-jars chdb-lib
	$(GO) test -run '^$$' -bench 'BenchmarkRunKafkaClickHouse' -benchtime 3x -timeout 30m ./pipeline
	$(GO) test -run '^$$' -bench 'WriterOnServer|WriterOwnPart' -benchtime 20x ./storage
	$(GO) test -run '^$$' -bench 'ServerCostOfViews' -benchtime 10x ./storage
	$(GO) test -run '^$$' -bench 'ServerPartLayout' -benchtime 2x -timeout 30m ./storage

build:
	$(GO) build -o bin/ ./cmd/...

# The demo's in-process broker is linked only with the demo tag.
demo: chdb-lib
	$(GO) build -tags demo -o bin/ ./cmd/...
	./bin/declinemon demo --stay

replay-demo: build
	mkdir -p $(OUT)
	./bin/loadgen generate --scenario busy-mixed-day --out $(OUT)/events.jsonl.gz --truth $(OUT)/truth.json --bad-ratio 0.001
	./bin/declinemon replay --input $(OUT)/events.jsonl.gz --alerts-out $(OUT)/alerts.jsonl
	@echo "alerts: $(OUT)/alerts.jsonl   ground truth: $(OUT)/truth.json"

score: build
	./bin/loadgen score

clean:
	rm -rf bin $(OUT)
