package hostview

// The watch stream (GET /v2.0/moat/hosts/{host}/watch, see docs/agent.md)
// is newline-delimited JSON, one Event per line.
const (
	// EventSnapshot frames replace the agent's view: the first frame of a
	// snapshot starts an empty view, the frame without More completes it at
	// Revision.
	EventSnapshot = "snapshot"
	// EventDelta frames change the view; the frame without More completes
	// the revision, and only then is it applied.
	EventDelta = "delta"
	// EventBookmark says that the server has followed the change log up to
	// Revision and nothing more concerns this host: the agent may resume
	// from there. It is also the stream's heartbeat.
	EventBookmark = "bookmark"
	// EventResync says the revision the agent asked for is older than the
	// change log holds (compacted; OldestRevision is the oldest it holds)
	// or newer than the server knows: a snapshot follows.
	EventResync = "resync"
)

// Event is one line of the watch stream. Snapshot and delta events carry
// a Delta (for a snapshot: every object, all upserts).
type Event struct {
	Type     string `json:"type"`
	Revision int64  `json:"revision"`
	// More: further frames of the same revision follow.
	More bool `json:"more,omitempty"`
	Delta
	OldestRevision int64  `json:"oldest_revision,omitempty"`
	Reason         string `json:"reason,omitempty"`
	// Counters is an EventCounters request (counters.go).
	Counters *CountersRequest `json:"counters,omitempty"`
}

// MaxFrameWeight bounds a frame (Delta.Weight): about 500 ports' worth,
// some 100 KB of JSON, whatever the size of the host.
const MaxFrameWeight = 500

// MaxLineBytes is the longest line an agent reads: a frame holds at most
// one object heavier than MaxFrameWeight (a group with thousands of rules).
const MaxLineBytes = 16 << 20

// PortReport is an agent's status of one port: ACTIVE (Reason ""), or
// ERROR with the reason it cannot enforce it.
type PortReport struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Report is what an agent posts to /v2.0/moat/hosts/{host}/report: the
// revision its kernel enforces, and the ports whose status changed.
type Report struct {
	Revision int64        `json:"revision"`
	Ports    []PortReport `json:"ports,omitempty"`
}
