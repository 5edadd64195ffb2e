package hybrid

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

// CheckDeviceID accepts what can safely become part of an interface name
// and of an ovs-vsctl argument: letters, digits, '-', '_' and '.', not "."
// or "..". Neutron port ids are UUIDs.
func CheckDeviceID(id string) error {
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

// Patch ports. Neutron's OVS agent joins br-int and each provider bridge
// with a pair of patch ports (or veths), named by neutron-lib's
// get_interface_name: the prefix plus the bridge's name when that fits
// the kernel's 15 characters, else the prefix, the name cut short and six
// hex digits of the name's SHA-1.
const (
	IntPatchPrefix = "int-" // the end on br-int (PEER_INTEGRATION_PREFIX)
	PhyPatchPrefix = "phy-" // the end on the provider bridge (PEER_PHYSICAL_PREFIX)

	// MaxDeviceNameLen is the kernel's limit on interface names
	// (IFNAMSIZ less the terminating NUL; DEVICE_NAME_MAX_LEN).
	MaxDeviceNameLen = 15
	// interfaceHashLen is neutron-lib's INTERFACE_HASH_LEN.
	interfaceHashLen = 6
)

// IntPatchPort is the name of the patch port on br-int that leads to the
// provider bridge bridge (int-br-ex for br-ex).
func IntPatchPort(bridge string) string { return interfaceName(IntPatchPrefix, bridge) }

// PhyPatchPort is the name of the patch port on the provider bridge bridge
// that leads to br-int (phy-br-ex for br-ex).
func PhyPatchPort(bridge string) string { return interfaceName(PhyPatchPrefix, bridge) }

func interfaceName(prefix, name string) string {
	if len(prefix)+len(name) <= MaxDeviceNameLen {
		return prefix + name
	}
	sum := sha1.Sum([]byte(name))
	keep := MaxDeviceNameLen - len(prefix) - interfaceHashLen
	return prefix + name[:keep] + hex.EncodeToString(sum[:])[:interfaceHashLen]
}
