package hostview

import "time"

// EventCounters asks the agent for the hit counters of some of its ports'
// rules (Event.Counters); it answers with a CountersAnswer posted to
// /v2.0/moat/hosts/{host}/counters (docs/agent.md). An agent that does not
// know the event ignores it, and the server's waiter times out.
const EventCounters = "counters"

// MaxCountersPorts bounds the ports of one counters request: the agent
// reads each one's chains on its own (a few processes per port).
const MaxCountersPorts = 16

// CountersRequest is what an EventCounters line carries.
type CountersRequest struct {
	// ID is the server's request id, echoed in the answer.
	ID    string   `json:"id"`
	Ports []string `json:"ports"`
}

// RuleCounter is one rule of a port's chain with the kernel's counters.
type RuleCounter struct {
	Family string `json:"family"` // IPv4 or IPv6
	Table  string `json:"table"`
	Chain  string `json:"chain"`
	// Number is the rule's position in its chain, from 1.
	Number int    `json:"rule_number"`
	Rule   string `json:"rule"` // as iptables-save prints it, after "-A CHAIN "
	// Origin is, on the nftables backend, the rule's origin tag
	// (nftrender.OriginTag: "sgr <rule ids>", "default-drop", ...) and
	// Rule is empty: Chain and Number are then the iptables layout's,
	// whose i and o chains the nftables chains follow rule for rule.
	Origin  string `json:"origin,omitempty"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// CountersAnswer is the agent's answer to a CountersRequest: per port, the
// rules of its own chains (i, o and s, both families) with their counters,
// read at ReadAt; or, when it cannot read any, Error (e.g. the nftables
// backend, whose rules carry no counters). Errors says why a port has none.
type CountersAnswer struct {
	RequestID string                   `json:"request_id"`
	ReadAt    time.Time                `json:"read_at"`
	Ports     map[string][]RuleCounter `json:"ports,omitempty"`
	Errors    map[string]string        `json:"errors,omitempty"`
	Error     string                   `json:"error,omitempty"`
}
