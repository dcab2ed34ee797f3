# jetflow: run `make run` to try it, `make test` to test it. Only Go (and make) are needed.

GO      ?= go
BIN     ?= bin/jetflow
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# The race detector needs cgo and a C compiler; where Go has neither (CGO_ENABLED=0, e.g. a
# machine with only Go installed), the tests run without it. Override with RACE= or RACE=-race.
RACE    ?= $(if $(filter 1,$(shell $(GO) env CGO_ENABLED)),-race,)

# Benchmarks against an embedded JetStream (run them on a quiet machine; nothing else building
# or testing). BENCHCOUNT repeats each go test benchmark; BENCHIDLE is the idle workload's N
# (waiting instances) in make bench and make bench-idle.
BENCHCOUNT ?= 1
BENCHIDLE  ?= 100000

# make cluster: the nats-server binary, built from the module in go.mod (the version jetflow
# embeds and tests against).
NATS_SERVER ?= bin/nats-server

.PHONY: build run test fuzz bench bench-idle bench-go lint conf-check deploy-check deploy-sync prove-permissions nats cluster cluster-stop soak clean polyglot

## build: the jetflow binary in bin/
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/jetflow

## run: everything in one process (embedded NATS + worker with the examples), data in ./.jetflow
run:
	$(GO) run ./cmd/jetflow dev

# The end-to-end suites, run a second time with the executor cache off (every turn replays the
# instance from storage), so that eviction and cold starts are held to the same results.
E2E_PKGS ?= ./orchestration ./pkg/engine ./pkg/httpapi ./pkg/raiser

## test: every package, with the race detector where available; then the end-to-end suites with
## the executor cache off; then the web UI in headless Chromium (test/browser, its own module;
## skipped without chromium unless JETFLOW_REQUIRE_BROWSER=1)
test:
	@if [ -z "$(RACE)" ]; then echo "note: no cgo/C compiler, testing without -race"; fi
	$(GO) test $(RACE) -count=1 -timeout 20m ./...
	JETFLOW_TEST_CACHE_SIZE=0 $(GO) test $(RACE) -count=1 -timeout 10m $(E2E_PKGS)
	cd test/browser && $(GO) test -count=1 -timeout 10m ./...

# make fuzz: each fuzz target runs for FUZZTIME, one after another (go test -fuzz takes one target
# of one package at a time). Findings are written to the package's testdata/fuzz/<target>/, which
# plain go test (make test) then runs as a regression test.
FUZZTIME ?= 60s
FUZZ_TARGETS ?= \
	./pkg/history:FuzzDecodeEvent \
	./pkg/backend:FuzzEventID ./pkg/backend:FuzzContinuation \
	./pkg/backend/natsjs:FuzzDecodeRecord ./pkg/backend/natsjs:FuzzInstanceSubject \
	./pkg/backend/natsjs:FuzzParseSubject ./pkg/backend/natsjs:FuzzTokenRoundTrip \
	./pkg/engine:FuzzMessageEvent ./pkg/httpapi:FuzzHTTPRequest ./pkg/raiser:FuzzParse

## fuzz: every fuzz target for FUZZTIME (default 60s) each, one at a time
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "== $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## bench: every workload of jetflow bench once, one JSON line each (README: Benchmarks)
bench:
	$(GO) run ./cmd/jetflow bench --workload all --idle-n $(BENCHIDLE)

## bench-idle: only the idle workload (BENCHIDLE waiting instances)
bench-idle:
	$(GO) run ./cmd/jetflow bench --workload idle --idle-n $(BENCHIDLE)

## bench-go: the go test benchmarks: approval, raise->activity latency, turn cost by history length
bench-go:
	$(GO) test -run '^$$' -bench 'Approval' -benchtime 5000x -count $(BENCHCOUNT) ./pkg/engine
	$(GO) test -run '^$$' -bench 'RaiseLatency' -benchtime 1000x -count $(BENCHCOUNT) ./pkg/engine
	$(GO) test -run '^$$' -bench 'TurnCost' -benchtime 200x -count $(BENCHCOUNT) ./pkg/engine

## lint: gofmt and go vet
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l reports:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## conf-check: check the NATS server configurations (like nats-server -t, no binary needed)
conf-check:
	$(GO) run ./cmd/jetflow conf-check nats.conf deploy/nats.conf

## deploy-check: render every overlay in deploy/overlays with kustomize, decode each object strictly
## into its Kubernetes type and check the rules (probes, limits, pinned images, PodDisruptionBudgets,
## NetworkPolicies, the KEDA triggers); prints each overlay's objects by kind. deploy/check is a
## module of its own (kustomize and k8s.io/api stay out of jetflow's go.mod)
deploy-check:
	cd deploy/check && $(GO) vet . && $(GO) test -count=1 -v .

## deploy-sync: copy deploy/*.conf (the NATS configuration) into the kustomize base, deploy/base, which
## cannot read it where it is
deploy-sync:
	cp deploy/*.conf deploy/base/

## prove-permissions: start bin/nats-server (built from go.mod) with nats-tls.conf (nats.conf with
## TLS), certificates and passwords generated for the run, and check each user's permissions: what
## it may do works end to end, what it may not is refused. One line per check, then the tally
prove-permissions:
	$(GO) build -o $(NATS_SERVER) github.com/nats-io/nats-server/v2
	$(GO) run ./cmd/jetflow-permissions --nats-server $(NATS_SERVER)

## nats: a local NATS server with JetStream (the embedded one of `jetflow dev`, with the worker)
nats:
	$(GO) run ./cmd/jetflow dev

## cluster: a local 3-node JetStream cluster (nats-server processes) and 3 workers, streams and
## buckets at 3 replicas, data in ./.jetflow/cluster; Ctrl-C stops it (scripts/cluster.sh)
cluster: build
	$(GO) build -o $(NATS_SERVER) github.com/nats-io/nats-server/v2
	NATS_SERVER_BIN=$(NATS_SERVER) JETFLOW_BIN=$(BIN) scripts/cluster.sh start

## cluster-stop: stop what make cluster left running (if its terminal went away)
cluster-stop:
	scripts/cluster.sh stop

## soak: the chaos soak test (internal/soak, not part of make test): a 3-node cluster, 3 workers,
## the api and the raiser as processes; SOAK_N instances (2000) while workers are SIGKILLed, a
## server restarted and a worker SIGSTOPped past its lease for SOAK_SECONDS (120); data in
## .jetflow/soak. The last line is the verdict; README: Soak
soak: build
	$(GO) build -o $(NATS_SERVER) github.com/nats-io/nats-server/v2
	$(GO) build -o bin/jetflow-soak ./cmd/jetflow-soak
	NATS_SERVER_BIN=$(NATS_SERVER) JETFLOW_BIN=$(BIN) bin/jetflow-soak

## polyglot: PlaceOrder end to end on an embedded JetStream, the Go worker serving the orchestrator
## and the Node.js worker of examples/activity-worker-node serving CheckAndReserveInventory
## (internal/polyglot); prints "polyglot: PlaceOrder completed with the Node worker". Needs node and
## npm; installs the worker's packages (npm ci) when they are missing
polyglot:
	@cd examples/activity-worker-node && { [ -d node_modules ] || npm ci --no-audit --no-fund >&2; }
	@$(GO) run ./cmd/jetflow-polyglot --node-dir examples/activity-worker-node

## clean: remove build output (the dev data in ./.jetflow stays; rm -rf .jetflow resets it)
clean:
	rm -rf bin
