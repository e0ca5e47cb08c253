package client

import "github.com/hopproxy/hop/pkg/mux"

// muxConfig is the mux session's config: the [mux] table and the stream
// cap of [limits].
func (c *Client) muxConfig() mux.Config {
	return mux.Config{
		KeepaliveInterval:  c.cfg.Mux.KeepaliveInterval.Duration,
		KeepaliveTimeout:   c.cfg.Mux.KeepaliveTimeout.Duration,
		MaxStreamWindow:    uint32(c.cfg.Mux.MaxStreamWindow),
		MaxStreams:         c.cfg.Limits.MaxStreamsPerSession,
		StreamCloseTimeout: c.cfg.Mux.StreamCloseTimeout.Duration,
		Logger:             c.log,
	}
}
