package main

import (
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

// In a namespace without rules, live mode says where to run instead of
// failing on an empty dump.
func TestTraceLiveEmptyNamespace(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "iptables-nft-save")
	ns := netnstest.New(t, "mt-empty").Name
	_, err := runCmd(t, newTraceCmd, "", "--netns", ns, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1")
	if err == nil || !strings.Contains(err.Error(), "shows no iptables tables in network namespace "+ns) {
		t.Errorf("error %v", err)
	}
	_, err = runCmd(t, newExplainCmd, "", "--netns", ns, "--backend", "iptables-nft", "--port", "c0a350e0")
	if err == nil || !strings.Contains(err.Error(), "no iptables tables") {
		t.Errorf("explain: error %v", err)
	}
}
