package metrics

import "sync/atomic"

// Conns counts the connections of one proxy or visitor and the bytes
// they moved. Safe for concurrent use; the zero value is ready.
//
// In is the bytes that came from the far user toward the service (on
// hops: from the internet user toward hopc), Out the bytes back.
type Conns struct {
	Open, Total atomic.Int64
	In, Out     atomic.Int64
}

// Opened counts a new connection (a TCP connection, a UDP flow, a
// relayed visitor stream).
func (c *Conns) Opened() {
	c.Open.Add(1)
	c.Total.Add(1)
}

// Closed counts the end of a connection Opened counted.
func (c *Conns) Closed() { c.Open.Add(-1) }

// Snapshot is a copy of the counts.
func (c *Conns) Snapshot() ConnCounts {
	return ConnCounts{Open: c.Open.Load(), Total: c.Total.Load(), In: c.In.Load(), Out: c.Out.Load()}
}

// ConnCounts is a snapshot of Conns.
type ConnCounts struct{ Open, Total, In, Out int64 }
