package wiring

import (
	"fmt"
	"strings"
)

// DevIDLen is how much of a port id a device name carries: Neutron and
// os-vif name a port's devices prefix + port id[:11] (e.g. tapc0a350e0-43),
// which fits the kernel's 15-character limit on interface names.
const DevIDLen = 11

// Device name prefixes of the hybrid wiring, as Neutron and os-vif use them.
const (
	TapPrefix = "tap" // the VM's tap, created by the hypervisor
	QbrPrefix = "qbr" // the per-port Linux bridge the firewall sees
	QvbPrefix = "qvb" // the veth end in the Linux bridge
	QvoPrefix = "qvo" // the veth end in the integration bridge
)

// DevID is the part of a port id that device names carry: its first 11
// characters (all of it when shorter).
func DevID(portID string) string {
	if len(portID) > DevIDLen {
		return portID[:DevIDLen]
	}
	return portID
}

// TapName is the name of a port's tap device ("tap" + id[:11]).
func TapName(portID string) string { return TapPrefix + DevID(portID) }

// BridgeName is the name of a port's Linux bridge ("qbr" + id[:11]).
func BridgeName(portID string) string { return QbrPrefix + DevID(portID) }

// VethBridgeName is the name of the veth end in the port's Linux bridge
// ("qvb" + id[:11]).
func VethBridgeName(portID string) string { return QvbPrefix + DevID(portID) }

// VethOVSName is the name of the veth end in the integration bridge
// ("qvo" + id[:11]).
func VethOVSName(portID string) string { return QvoPrefix + DevID(portID) }

// DevIDFromName returns the port-id prefix of a device of the hybrid wiring
// (tap/qbr/qvb/qvo + id[:11]) and whether name is one.
func DevIDFromName(name string) (devID string, ok bool) {
	for _, p := range []string{TapPrefix, QbrPrefix, QvbPrefix, QvoPrefix} {
		if id, found := strings.CutPrefix(name, p); found && id != "" && validID(id) == nil {
			return id, true
		}
	}
	return "", false
}

// validID accepts what can safely become part of an interface name and of
// an ovs-vsctl argument: letters, digits, '-', '_' and '.'. Neutron port
// ids are UUIDs.
func validID(id string) error {
	if id == "" {
		return fmt.Errorf("empty port id")
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("port id %q: character %q cannot be part of a device name", id, c)
		}
	}
	if id == "." || id == ".." {
		return fmt.Errorf("port id %q is not usable in a device name", id)
	}
	return nil
}
