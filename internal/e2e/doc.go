// Package e2e holds moat's end-to-end tests: real packets between lab VMs
// (network namespaces wired to ports of a private `moat allinone`, see
// package lab), for both iptables backends and the nftables backend
// (TestNFTablesSecurityGroups, nft_test.go: the same scenarios, reading
// moat's nft counters by their rules' origin tags). Everything happens inside
// namespaces the tests create; the machine's own firewall and links are
// never touched. The tests need root and the tools of the Makefile's
// TEST_PACKAGES; without them they skip, or fail with MOAT_REQUIRE_KERNEL=1
// (the openstack CLI: MOAT_REQUIRE_CLI=1), as make test sets them.
//
//	go test ./internal/e2e -v                          # both backends
//	go test ./internal/e2e -run 'TestIPIP/iptables-nft' -v
//	go test ./internal/e2e -run 'TestNFTablesSecurityGroups' -v
//	MOAT_E2E_KEEP=1 go test ./internal/e2e             # keep a failed lab
//
// Each backend gets its own lab (named "e" + 5 hex digits, torn down when
// its test ends; TestMain removes the labs of runs that died). Negative
// probes do not sleep: they wait until the DROP rule's counter in
// iptables-save -c has counted them, then check that nothing arrived.
package e2e
