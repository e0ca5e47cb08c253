// Package metrics defines the Prometheus metrics of hops and hopc: their
// names, help texts, labels and the fixed sets of label values, so that
// every series hop exports is listed in one place (README "Metrics" has
// the table).
//
// Every series of hops carries the constant label node (LabelNode, the
// nodeName of that hops), added by NewServer.
//
// Nothing here registers on the global default registry: a server or
// client makes its own prometheus.Registry and passes it to NewServer or
// NewClient, which register on it.
//
// Two kinds of series:
//
//   - Event counters (session losses, refused logins, P2P attempts) are
//     ordinary CounterVecs in the Server and Client structs, incremented
//     where the event happens. Their label values come from fixed sets
//     (LossCauses, RefusalReasons, the NAT classes the server already
//     reduces reports to), so the number of series is bounded whatever
//     peers send. Every value of a fixed set is created at zero, so a
//     scrape shows the series before the first event.
//   - State (clients connected, proxies, per-proxy and per-visitor byte
//     and connection counts, heartbeat round trips) is read at scrape
//     time from the owner's own tables through a custom Collector
//     (ServerState, ClientState). The counters live on the proxy itself
//     (plain atomics the copy loop adds to, see pkg/bridge.CopyCounting),
//     so the JSON API and Prometheus read the same numbers, and a proxy's
//     or client's series vanish when it goes.
package metrics
