// Package nftables makes the kernel's nftables hold moat's own tables
// (bridge, ip and ip6 "moat" for the nftables backend, docs/agent.md),
// declaratively, incrementally and atomically, and touches nothing else.
//
// # Model
//
// A Ruleset is the whole desired content of the tables a Syncer owns:
// per table its base chains (hook, priority, policy), regular chains with
// their rules in order, and named sets and maps (key types, one or a
// concatenation; verdict or conntrack-zone maps; interval flag; elements).
// The model does not know moat's layout or how rules are compiled: the
// renderer from the firewall compiler's structured rules builds a Ruleset,
// and the syncer only checks, renders and diffs it.
//
// Rules and elements are made of Terms, not text: fixed syntax (Kw) is
// checked to be words of letters, digits and operators only, and every
// value — interface names, set references, jump targets, numbers,
// addresses, MACs — has a typed constructor that renders it so that it
// cannot leave its place. nft 1.0.6 (Debian 12) has no escapes in quoted
// strings and no quoting of object names, so names are checked against
// nft's grammar and keyword list, quoted literals refuse '"' and '\', an
// interface name refuses '*' (a wildcard to nft), and comments — written
// by people, e.g. group names — are cleaned rather than refused. A Kw
// refuses "jump", "goto", '@' and "comment", so the syncer sees every
// reference a rule makes and orders commands by them. Anything refused is
// an error naming the table, chain or set and the rule or element, before
// any command runs.
//
// Elements are canonicalised per data type (marks in hex, addresses as
// the address, prefix or range nft lists them as), so that what the
// syncer wrote and what it reads back compare as strings. Interval sets
// refuse overlapping elements, which ipset's hash:net took: Merge and
// MergePrefixes turn any address list into disjoint intervals first, and
// the syncer refuses overlaps with a message rather than let the kernel
// refuse the whole transaction.
//
// # Transactions
//
// The Syncer keeps what it committed in memory: per chain its hook and its
// rules' fingerprints, per set its type and elements. Apply diffs the
// desired Ruleset against that and writes ONE `nft -f -` transaction with
// only the difference: element adds and deletes in sets and maps, flush
// and refill of the chains whose rules changed (rules are never edited
// by handle: no handles to track, and a chain always holds exactly what
// was rendered), chain and set adds and deletes. Inside a table the order
// is what the kernel's references require and what keeps every step
// fail-closed: delete elements and flush chains that go or change
// (unreference), delete chains then sets, create sets then chains then
// rules, add elements last — so a verdict element points only at a chain
// that is filled, and is removed before its chain is deleted. nft
// transactions are atomic: a refused command (a parse error, a kernel
// error such as an overlapping interval) applies nothing, and the error
// names the refused command.
//
// A table the syncer must load whole — the first start with no table, or
// a table holding something it cannot express as a difference (an object
// kind moat never writes, a name or element it cannot render) — is
// replaced inside the same single transaction by `add table; delete
// table; add table ...` (nft 1.0.6 has no `destroy`): packets see the old
// table until the commit and the new one after it. A table that exists
// and is understood is diffed, also after a restart, so a restart keeps
// the counters and rewrites only what changed.
//
// Commands are rendered by the package's own writer, not by knftables'
// Transaction.String: knftables (sigs.k8s.io/knftables) runs nft only in
// the calling process's network namespace, does not quote interface-name
// keys, quotes comments with Go escapes nft does not read, and writes one
// command per element (batched elements load 3–5 times faster with nft
// 1.0.6). knftables supplies the vocabulary (families, hooks, priorities
// and their numbers) and, in the tests, its Fake: an independent
// in-memory nftables on which every planned transaction is run, with the
// reference checks the Fake lacks added by the tests.
//
// # Reading the kernel and drift
//
// `nft -j list table` lists rules as expression trees that do not compare
// with the text moat wrote, so every rule's comment carries a fingerprint
// of the rule's text after its origin tag ("sgr <id> #1a2b3c4d5e6f";
// Origin strips it for `moat trace`). Reading a table back (`nft -j list
// tables`, then `nft -j list table` for each owned table that exists, and
// never another table) gives per chain the fingerprints in order: a chain
// somebody flushed, or added a rule to, differs and is rewritten; sets and
// maps are compared element by element.
//
// Reads happen only when needed: at the first Apply, after a failure or
// Invalidate, and when the namespace's nf_tables generation (one netlink
// round trip, iptables.NFTGeneration) moved by more than the syncer's own
// transactions. An Apply with nothing to change on an untouched
// namespace runs no process at all; the hot path never lists a table.
// Stats.Drift says what another writer changed. (The generation moves on
// any commit in the namespace, also other tools': each then costs one
// read of moat's tables. The monitor of docs' design §7 would narrow that
// to moat's tables; it is not here.)
package nftables
