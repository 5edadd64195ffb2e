# moat: build, run and test. Everything here works as root on a fresh Debian 12
# machine with Go in /usr/local/go; `make test` installs what the tests need.

export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/moat

# Debian packages the tests drive for real: the openstack CLI (API tests),
# iptables/ipset/conntrack/iproute2 (rules loaded into scratch network
# namespaces), Neutron itself (the parity oracle for the compiler), and
# Neutron's own API tests with the Keystone they authenticate against
# (tempest 33, neutron-tempest-plugin 2.0.0, Keystone 22 on PostgreSQL).
TEST_PACKAGES := python3-openstackclient python3-neutronclient python3-neutron \
	iptables ipset conntrack iproute2 openvswitch-switch iputils-ping ethtool tcpdump postgresql \
	tempest neutron-tempest-plugin python3-keystone python3-psycopg2 curl

# What the agent drives on a host (Open vSwitch is optional: without it the
# agent falls back to a Linux bridge br-int, without VLAN isolation).
RUN_PACKAGES := iptables ipset conntrack iproute2

.PHONY: all build run run-deps test tempest deps vet fmt-check clean

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
	$(GO) build -o $(BIN) ./cmd/moat

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

# The whole suite. MOAT_REQUIRE_CLI and MOAT_REQUIRE_POSTGRES make a missing
# openstack CLI or PostgreSQL a failure, not a skip. Then Neutron's own API
# tests against the moat just built (tempest/run.sh).
test: deps fmt-check vet build
	MOAT_REQUIRE_CLI=1 MOAT_REQUIRE_POSTGRES=1 $(GO) test -count=1 -timeout 30m ./...
	tempest/run.sh $(BIN) extended

# Neutron's own API tests alone: `make tempest` runs the selection CI runs
# (extended, which holds core); TEMPEST=core or TEMPEST='<regex>' picks another.
TEMPEST ?= extended
tempest: deps build
	tempest/run.sh $(BIN) '$(TEMPEST)'

clean:
	rm -rf bin
