// Package metrics holds every Prometheus metric moat exports, in one
// place (docs/metrics.md lists them). They live in the default registry,
// with Go's and the process's own; Handler serves them. A process that is
// both server and agent (allinone) exports both sets at one /metrics.
package metrics

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the server serves the metrics, and the agent with
// --metrics-listen.
const Path = "/metrics"

// Handler serves the default registry.
func Handler() http.Handler { return promhttp.Handler() }

// Server side.
var (
	APIRequestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "moat_api_request_duration_seconds",
		Help:    "Neutron API requests by route (ids replaced by {id}), method and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})

	WatchStreams = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "moat_watch_streams",
		Help: "Agents' watch streams open on this server.",
	})
	WatchStreamRevision = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "moat_watch_stream_revision",
		Help: "The change-log revision each host's stream has brought its agent to (lag: moat_changelog_revision minus this).",
	}, []string{"host"})
	WatchSnapshots = promauto.NewCounter(prometheus.CounterOpts{
		Name: "moat_watch_snapshots_total",
		Help: "Snapshots sent to agents (first connects, resyncs, far-behind resumes).",
	})
	WatchResumes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "moat_watch_resumes_total",
		Help: "Streams resumed from an agent's revision without a snapshot.",
	})
	ChangeLogRevision = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "moat_changelog_revision",
		Help: "The newest change-log revision this server's watch has read.",
	})
	// ChangeEnforced is the API → enforced latency: from the moment this
	// server's watch read a committed change to the report of the agent
	// the change was sent to saying its kernel enforces it.
	ChangeEnforced = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "moat_change_enforced_seconds",
		Help:    "From a change's commit (read by this server's watch) to the concerned agent's report that its kernel enforces it.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
)

// Agent side.
var (
	AgentSyncDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "moat_agent_sync_duration_seconds",
		Help:    "Agent syncs (compile, wire, apply) by outcome: ok or error.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"outcome"})
	AgentEnforcedRevision = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "moat_agent_enforced_revision",
		Help: "The change-log revision whose rules the kernel holds.",
	})
	AgentPorts = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "moat_agent_ports",
		Help: "Ports of this host by state: enforced, rejected (ERROR) or unwired (plug failed).",
	}, []string{"state"})
	AgentChains = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "moat_agent_chains",
		Help: "Chains of the last ruleset applied.",
	})
	AgentRules = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "moat_agent_rules",
		Help: "Rules of the last ruleset applied.",
	})
	AgentSets = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "moat_agent_sets",
		Help: "Remote-group sets (ipsets or nftables sets) of the last ruleset applied.",
	})
	AgentTransactions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_agent_kernel_transactions_total",
		Help: "Kernel transactions (iptables-restore, ipset restore, nft -f, ovs-ofctl --bundle) by tool and outcome (ok, error).",
	}, []string{"tool", "outcome"})
	AgentApplyErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "moat_agent_apply_errors_total",
		Help: "Failed applies (the previous rules stay in force; retried with backoff).",
	})
	AgentDriftRepairs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "moat_agent_drift_repairs_total",
		Help: "Times the kernel was found to differ from what the agent applied (edited or flushed) and a resync started.",
	})
	AgentConntrackDeleted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "moat_agent_conntrack_deleted_total",
		Help: "Conntrack entries deleted because the rule or member that allowed them went.",
	})
	AgentLogEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_agent_log_events_total",
		Help: "Packets the security-group log rules reported (network logs), by verdict (ACCEPT, DROP).",
	}, []string{"verdict"})
)

// Route is the label of a request path: the resources with every id
// replaced by {id} (/v2.0/ports/{id}/tags/{id}); matched says the API
// routed it (an unrouted path is "unmatched", so that clients cannot make
// labels without bound).
func Route(segs []string, matched bool) string {
	if !matched {
		return "unmatched"
	}
	var b strings.Builder
	b.WriteString("/v2.0")
	// Resources and ids alternate, after a prefix naming an extension's
	// namespace (/v2.0/moat/hosts/{id}/watch, /v2.0/log/logs/{id}).
	start := 0
	if len(segs) > 0 && (segs[0] == "moat" || segs[0] == "log") {
		b.WriteString("/" + segs[0])
		start = 1
	}
	for i := start; i < len(segs); i++ {
		if (i-start)%2 == 1 {
			b.WriteString("/{id}")
		} else {
			b.WriteString("/" + segs[i])
		}
	}
	return b.String()
}
