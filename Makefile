# moat: build, run and test. Everything here works as root on a fresh Debian 12
# machine with Go in /usr/local/go; `make test` installs what the tests need.

export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/moat
# `moat version` prints this (git describe); a tree without git history
# falls back to the commit Go stamps into the binary.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION)

# Debian packages the tests drive for real: the openstack CLI (API tests),
# iptables/ipset/conntrack/iproute2 (rules loaded into scratch network
# namespaces), Neutron itself (the parity oracle for the compiler),
# Neutron's own API tests with the Keystone they authenticate against
# (tempest 33, neutron-tempest-plugin 2.0.0, Keystone 22 on PostgreSQL), and
# chromium for the console's browser test (internal/console).
TEST_PACKAGES := python3-openstackclient python3-neutronclient python3-neutron \
	iptables ipset nftables conntrack iproute2 openvswitch-switch iputils-ping iperf3 systemd ethtool tcpdump postgresql \
	tempest neutron-tempest-plugin python3-keystone python3-psycopg2 curl chromium

# What the agent drives on a host (Open vSwitch is optional: without it the
# agent falls back to a Linux bridge br-int, without VLAN isolation).
RUN_PACKAGES := nftables iptables ipset conntrack iproute2

.PHONY: all build run run-deps test tempest fuzz deps vet fmt-check clean

# install-missing installs those of the Debian packages $(1) that are not
# installed yet (nothing, and no apt-get update, when all are).
define install-missing
missing=""; for p in $(1); do \
	dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
fi
endef

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/moat

# The main job: the Neutron API on 127.0.0.1:9696 and this host's agent,
# state in /var/lib/moat.
run: build run-deps
	./$(BIN) allinone

run-deps:
	@$(call install-missing,$(RUN_PACKAGES))

deps:
	@$(call install-missing,$(TEST_PACKAGES))
	$(GO) mod download

fmt-check:
	@out=$$(gofmt -l cmd internal); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The whole suite, then the fuzz targets for a bounded time, then Neutron's
# own API tests against the moat just built (tempest/run.sh).
# MOAT_REQUIRE_KERNEL, MOAT_REQUIRE_CLI and MOAT_REQUIRE_POSTGRES make a
# missing root/tool/kernel feature, openstack CLI or PostgreSQL a failure,
# not a skip (internal/testenv); only opt-in tests skip.
TEST_REQUIRE := MOAT_REQUIRE_KERNEL=1 MOAT_REQUIRE_CLI=1 MOAT_REQUIRE_POSTGRES=1
test: deps fmt-check vet build
	$(TEST_REQUIRE) $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz
	tempest/run.sh $(BIN) extended

# Every fuzz target (package:Target; go test -fuzz takes one target of one
# package at a time) runs FUZZTIME past its committed corpus
# (testdata/fuzz/<Target>): 8 x 20s in make test. A longer run, e.g.
# `make fuzz FUZZTIME=10m`; a crasher is written to the package's
# testdata/fuzz/<Target>/, where it stays as a regression seed once fixed.
FUZZTIME ?= 20s
FUZZ_TARGETS := internal/api:FuzzAPI \
	internal/hybrid:FuzzReadSave internal/hybrid:FuzzReadIPSets \
	internal/trace:FuzzParseSave internal/trace:FuzzParseIPSets internal/trace:FuzzQuery internal/trace:FuzzLoadNFT \
	internal/dataplane/iptables:FuzzParseSave internal/dataplane/ipset:FuzzParseSave \
	internal/firewall/spec:FuzzParse internal/firewall/spec:FuzzCompile
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in ./$$pkg for $(FUZZTIME)"; \
		GO="$(GO)" scripts/fuzz-one $$pkg $$fn $(FUZZTIME); \
	done

# Neutron's own API tests alone: `make tempest` runs the selection CI runs
# (extended, which holds core); TEMPEST=core or TEMPEST='<regex>' picks another.
TEMPEST ?= extended
tempest: deps build
	tempest/run.sh $(BIN) '$(TEMPEST)'

clean:
	rm -rf bin
