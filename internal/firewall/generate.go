package firewall

// The random parity corpus is rendered by the real Neutron driver; see
// parity/gencorpus. Regenerating it needs root and Debian's python3-neutron.
//go:generate go run ./parity/gencorpus -out testdata/random -seed 1 -n 48
