package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file holds the keys of [[proxies]] that tell the local service the
// real client address (transport.proxyProtocolVersion) and limit a
// proxy's bandwidth (transport.bandwidthLimit, transport.bandwidthLimitMode),
// with frp's names and meanings.

// ProxyTransport is the [proxies.transport] table of a proxy.
type ProxyTransport struct {
	// ProxyProtocolVersion makes hopc write a PROXY protocol header
	// (HAProxy's) carrying the real client address before the bytes of
	// each connection to the local service: "v1" (text) or "v2" (binary),
	// or "" (the default) for none. tcp, stcp and xtcp take either; udp
	// takes only "v2", which puts a header in front of every datagram
	// (DGRAM, as HAProxy defines it). sudp and xudp take none.
	ProxyProtocolVersion string `toml:"proxyProtocolVersion,omitempty"`
	// BandwidthLimit caps the rate of the proxy's traffic in each
	// direction, all its connections together: a decimal number followed
	// by KB or MB, 1024-based as in frp ("500KB", "1MB", "1.5MB"); "" (the
	// default) for no limit.
	BandwidthLimit string `toml:"bandwidthLimit,omitempty"`
	// BandwidthLimitMode says who applies BandwidthLimit: "client" (hopc)
	// or "server" (hops); "" (the default) is "client". See LimitMode.
	BandwidthLimitMode string `toml:"bandwidthLimitMode,omitempty"`
}

// PROXY protocol versions of ProxyTransport.ProxyProtocolVersion.
const (
	ProxyProtocolV1 = "v1"
	ProxyProtocolV2 = "v2"
)

// Modes of ProxyTransport.BandwidthLimitMode.
const (
	BandwidthLimitClient = "client"
	BandwidthLimitServer = "server"
)

// BandwidthBytes returns the limit in bytes per second, 0 for none. It
// is meaningful on a validated config.
func (t ProxyTransport) BandwidthBytes() int64 {
	n, _ := ParseBandwidth(t.BandwidthLimit)
	return n
}

// LimitMode returns BandwidthLimitMode with its default applied.
func (t ProxyTransport) LimitMode() string {
	if t.BandwidthLimitMode == "" {
		return BandwidthLimitClient
	}
	return t.BandwidthLimitMode
}

// ParseBandwidth parses a bandwidth limit as frp writes it: a positive
// decimal number followed by KB (1024 bytes) or MB (1024*1024 bytes), per
// second. "" is 0, no limit.
func ParseBandwidth(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	var unit float64
	num := s
	switch {
	case strings.HasSuffix(s, "MB"):
		unit, num = 1024*1024, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "KB"):
		unit, num = 1024, strings.TrimSuffix(s, "KB")
	default:
		return 0, fmt.Errorf("%q has no accepted unit; write a number followed by KB or MB (1024-based, per second), e.g. \"500KB\" or \"1MB\"", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eExXpP_+-") || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q: %q is not a plain decimal number; write e.g. \"500KB\" or \"1.5MB\"", s, num)
	}
	b := f * unit
	if b < 1 {
		return 0, fmt.Errorf("%q is less than one byte per second; write a positive rate such as \"1KB\", or leave the key out for no limit", s)
	}
	if b > 1<<40 {
		return 0, fmt.Errorf("%q is more than 1048576MB (1 TiB) per second; leave the key out for no limit", s)
	}
	return int64(b), nil
}

type rawProxyTransport struct {
	ProxyProtocolVersion *string `toml:"proxyProtocolVersion"`
	BandwidthLimit       *string `toml:"bandwidthLimit"`
	BandwidthLimitMode   *string `toml:"bandwidthLimitMode"`
}

// proxyPPBW converts the keys of this file.
func (c conv) proxyPPBW(dst *ProxyConfig, v rawProxy) {
	c.str(&dst.Transport.ProxyProtocolVersion, v.Transport.ProxyProtocolVersion)
	c.str(&dst.Transport.BandwidthLimit, v.Transport.BandwidthLimit)
	c.str(&dst.Transport.BandwidthLimitMode, v.Transport.BandwidthLimitMode)
}

// validatePPBW checks the keys of this file for proxy p at key.
func (p ProxyConfig) validatePPBW(r *reporter, key string) {
	t := p.Transport
	switch v := t.ProxyProtocolVersion; {
	case v == "":
	case v != ProxyProtocolV1 && v != ProxyProtocolV2:
		r.add(key+".transport.proxyProtocolVersion", `%q is not a PROXY protocol version; use "v1" or "v2" (or leave it out for none)`, v)
	case p.Type == ProxySUDP || p.Type == ProxyXUDP:
		r.add(key+".transport.proxyProtocolVersion", "%s proxies do not take a PROXY protocol header; remove it (tcp, udp, stcp and xtcp proxies take one)", p.Type)
	case p.Type == ProxyUDP && v == ProxyProtocolV1:
		r.add(key+".transport.proxyProtocolVersion", `version 1 of the PROXY protocol has no UDP; use "v2", which hopc puts in front of every datagram`)
	}
	if _, err := ParseBandwidth(t.BandwidthLimit); err != nil {
		r.add(key+".transport.bandwidthLimit", "%v", err)
	}
	switch m := t.BandwidthLimitMode; m {
	case "", BandwidthLimitClient, BandwidthLimitServer:
	default:
		r.add(key+".transport.bandwidthLimitMode", `%q is not a bandwidth limit mode; use "client" (hopc applies the limit, the default) or "server" (hops applies it)`, m)
	}
}
