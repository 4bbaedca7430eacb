# gavel — see README.md. `make dev` runs the whole system, `make test` the
# whole suite.
GO        ?= go
BIN       := $(CURDIR)/.bin
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
FUZZTIME  ?= 60s
TESTFLAGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: all build dev test bench proto init lint fuzz clean

all: build

build:
	$(GO) build -o bin/gavel ./cmd/gavel

dev: build
	@hack/deps.sh dev
	bin/gavel dev $(DEVFLAGS)

test:
	@hack/deps.sh test
	$(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) ./...

# Benchmarks of the hot paths; each prints its figure beside the raw etcd
# figure measured in the same run. Counts are fixed so every run does the
# same work (BENCHCOUNT repeats them).
BENCHCOUNT ?= 3
bench:
	$(GO) test -run '^$$' -bench 'ClaimStart' -benchtime 20000x -count $(BENCHCOUNT) -timeout 30m ./bbs
	$(GO) test -run '^$$' -bench 'ListActualLRPs100k' -benchtime 5x -count $(BENCHCOUNT) -timeout 30m ./bbs
	$(GO) test -run '^$$' -bench 'Pass100k' -benchtime 5x -count $(BENCHCOUNT) -timeout 30m ./converger
	$(GO) test -run '^$$' -bench 'EventFanOut' -benchtime 50000x -count $(BENCHCOUNT) -timeout 30m ./bbs
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 30m ./bbs/events
	$(GO) test -run '^$$' -bench 'ScoreLRP|Schedule$$' -benchmem -count $(BENCHCOUNT) -timeout 30m ./auctioneer
	$(GO) test -run '^$$' -bench 'Simulate' -benchtime 3x -count $(BENCHCOUNT) -timeout 30m ./auctioneer
	$(GO) test -run '^$$' -bench 'BulkSync250' -benchtime 10x -count $(BENCHCOUNT) -timeout 30m ./rep
	$(GO) test -run '^$$' -bench 'Desire100Instances' -benchtime 1x -count $(BENCHCOUNT) -timeout 30m ./cmd/gavel
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 30m ./executor ./executor/logs ./executor/download
	$(GO) test -run '^$$' -bench 'Propagation10kRoutes50kEndpoints' -benchtime 200x -count $(BENCHCOUNT) -timeout 30m ./route-emitter
	$(GO) test -run '^$$' -bench 'FullResync100kEndpoints' -benchtime 3x -count $(BENCHCOUNT) -timeout 30m ./route-emitter
	$(GO) test -run '^$$' -bench 'CreateRunDestroy' -benchtime 100x -count $(BENCHCOUNT) -timeout 30m ./executor/gardenrunc
	$(GO) test -run '^$$' -bench 'ConcurrentCreate50' -benchtime 3x -count $(BENCHCOUNT) -timeout 30m ./executor/gardenrunc

fuzz:
	hack/fuzz.sh $(FUZZTIME)

proto:
	@hack/deps.sh proto
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	protoc -I . -I /usr/include \
		--go_out=. --go_opt=module=github.com/gavel-scheduler/gavel \
		--go-grpc_out=. --go-grpc_opt=module=github.com/gavel-scheduler/gavel \
		proto/models/*.proto

# garden-init's machine code, from its assembly source (binutils).
init:
	@hack/deps.sh test
	hack/gen-init.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin .bin
