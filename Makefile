# declinemon — the two commands a new machine needs:
#   make demo   generate a day of POS traffic with incidents and replay it
#   make test   everything CI checks
GO      ?= go
OUT     ?= $(CURDIR)/.demo
FUZZTIME ?= 20s

.PHONY: test lint unit race fuzz bench demo build score clean

test: lint unit race fuzz

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

# The race detector where goroutines meet: the command wiring and the pipeline.
race:
	$(GO) test -count=1 -race ./pipeline/... ./cmd/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./ingest

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./ingest ./classify ./pipeline
	$(GO) test -run '^$$' -bench 'BenchmarkEngine' -benchtime 1x ./alerting
	$(GO) test -run '^$$' -bench 'BenchmarkEngineObserve' -benchtime 3000000x ./alerting

build:
	$(GO) build -o bin/ ./cmd/...

demo: build
	mkdir -p $(OUT)
	./bin/loadgen generate --scenario busy-mixed-day --out $(OUT)/events.jsonl.gz --truth $(OUT)/truth.json --bad-ratio 0.001
	./bin/declinemon replay --input $(OUT)/events.jsonl.gz --alerts-out $(OUT)/alerts.jsonl
	@echo "alerts: $(OUT)/alerts.jsonl   ground truth: $(OUT)/truth.json"

score: build
	./bin/loadgen score

clean:
	rm -rf bin $(OUT)
