package ipam

import (
	"context"
	"fmt"
	"io"

	"github.com/moat-sg/moat/internal/neutron"
)

// MACStore is what MAC allocation asks the database.
type MACStore interface {
	// MACInUse reports whether a port of the network has the MAC.
	MACInUse(ctx context.Context, networkID, mac string) (bool, error)
}

// macTries is how often NewMAC draws before giving up (Neutron retries a
// colliding MAC as well).
const macTries = 32

// NewMAC picks an unused fa:16:3e:xx:xx:xx address (Neutron's default
// base_mac) on a network, drawing the last three bytes from random.
func NewMAC(ctx context.Context, st MACStore, networkID string, random io.Reader) (string, error) {
	for i := 0; i < macTries; i++ {
		var b [3]byte
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return "", fmt.Errorf("generate MAC: %w", err)
		}
		mac := fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
		used, err := st.MACInUse(ctx, networkID, mac)
		if err != nil {
			return "", err
		}
		if !used {
			return mac, nil
		}
	}
	return "", neutron.MacAddressGenerationFailure(networkID)
}

// CheckMAC refuses a MAC a port of the network has already.
func CheckMAC(ctx context.Context, st MACStore, networkID, mac string) error {
	used, err := st.MACInUse(ctx, networkID, mac)
	if err != nil {
		return err
	}
	if used {
		return neutron.MacAddressInUse(networkID, mac)
	}
	return nil
}
