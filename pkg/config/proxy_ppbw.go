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

// ProxyLoadBalancer is the [proxies.loadBalancer] table of a tcp, http
// or https proxy: proxies of one client or several with the same Group
// and GroupKey share their remotePort (tcp) or their domains (http,
// https; and locations and routeByHTTPUser) on hops, which spreads new
// connections (http: requests) across them, round robin.
type ProxyLoadBalancer struct {
	// Group names the group, [A-Za-z0-9._-]{1,64}; "" (the default) for
	// none.
	Group string `toml:"group,omitempty"`
	// GroupKey must be the same in every member; hops refuses a member
	// with another key. Default "".
	GroupKey string `toml:"groupKey,omitempty"`
}

// ProxyHealthCheck is the [proxies.healthCheck] table, frp's: hopc checks
// the proxy's local service every IntervalSeconds, withdraws the proxy
// from hops after MaxFailed failures in a row, and registers it again
// when a check passes.
type ProxyHealthCheck struct {
	// Type is "tcp" (a connect), "http" (a GET of Path answered 2xx) or ""
	// (the default) for no health check.
	Type string `toml:"type,omitempty"`
	// Path (http) is the path requested, starting with "/". Required for
	// http.
	Path string `toml:"path,omitempty"`
	// TimeoutSeconds bounds one check, >= 1. Default 3.
	TimeoutSeconds int `toml:"timeoutSeconds,omitempty"`
	// MaxFailed is the number of failures in a row that withdraws the
	// proxy, >= 1. Default 1.
	MaxFailed int `toml:"maxFailed,omitempty"`
	// IntervalSeconds is the time between checks, >= 1. Default 10.
	IntervalSeconds int `toml:"intervalSeconds,omitempty"`
}

// Health check defaults (frp's).
const (
	DefaultHealthCheckTimeoutSeconds  = 3
	DefaultHealthCheckMaxFailed       = 1
	DefaultHealthCheckIntervalSeconds = 10
)

type rawProxyLoadBalancer struct {
	Group    *string `toml:"group"`
	GroupKey *string `toml:"groupKey"`
}

type rawProxyHealthCheck struct {
	Type            *string `toml:"type"`
	Path            *string `toml:"path"`
	TimeoutSeconds  *int64  `toml:"timeoutSeconds"`
	MaxFailed       *int64  `toml:"maxFailed"`
	IntervalSeconds *int64  `toml:"intervalSeconds"`
}

// proxyPPBW converts the keys of this file.
func (c conv) proxyPPBW(key string, dst *ProxyConfig, v rawProxy) {
	c.str(&dst.LoadBalancer.Group, v.LoadBalancer.Group)
	c.str(&dst.LoadBalancer.GroupKey, v.LoadBalancer.GroupKey)
	hc := &dst.HealthCheck
	c.str(&hc.Type, v.HealthCheck.Type)
	if hc.Type != "" {
		hc.TimeoutSeconds, hc.MaxFailed, hc.IntervalSeconds = DefaultHealthCheckTimeoutSeconds, DefaultHealthCheckMaxFailed, DefaultHealthCheckIntervalSeconds
	}
	c.str(&hc.Path, v.HealthCheck.Path)
	c.int(&hc.TimeoutSeconds, key+".healthCheck.timeoutSeconds", v.HealthCheck.TimeoutSeconds)
	c.int(&hc.MaxFailed, key+".healthCheck.maxFailed", v.HealthCheck.MaxFailed)
	c.int(&hc.IntervalSeconds, key+".healthCheck.intervalSeconds", v.HealthCheck.IntervalSeconds)
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
	if lb := p.LoadBalancer; lb.Group != "" || lb.GroupKey != "" {
		switch {
		case p.Type != ProxyTCP && !p.Type.IsVhost():
			r.add(key+".loadBalancer.group", "only tcp, http, https and tcpmux proxies join a load-balancing group; remove loadBalancer from this %s proxy", p.Type)
		case lb.Group == "":
			r.add(key+".loadBalancer.group", "missing: groupKey is set; name the group, e.g. group = \"web\"")
		case !nameRE.MatchString(lb.Group):
			r.add(key+".loadBalancer.group", "%q is not a valid group name; use 1-64 of A-Z a-z 0-9 . _ -", lb.Group)
		case p.Type == ProxyTCP && p.RemotePort == 0:
			r.add(key+".remotePort", "0 is not allowed in a load-balancing group: its members share one port; set the same remotePort in each")
		}
		if len(lb.GroupKey) > 256 {
			r.add(key+".loadBalancer.groupKey", "%d bytes; at most 256", len(lb.GroupKey))
		}
	}
	switch hc := p.HealthCheck; hc.Type {
	case "":
		if hc != (ProxyHealthCheck{}) {
			r.add(key+".healthCheck.type", `missing: the other healthCheck keys are set; write type = "tcp" or "http"`)
		}
	case "tcp", "http":
		if p.Type.IsDatagram() {
			r.add(key+".healthCheck.type", "%s proxies have no health check (it connects over TCP); remove healthCheck", p.Type)
		}
		if p.Plugin.Type != "" {
			r.add(key+".healthCheck.type", "a health check connects to localIP:localPort, and a proxy with a [proxies.plugin] has none: the plugin serves its connections; remove healthCheck (or the plugin)")
		}
		if hc.Type == "http" && !strings.HasPrefix(hc.Path, "/") {
			r.add(key+".healthCheck.path", `%q is not a path; an http health check requests a path starting with "/", e.g. path = "/status"`, hc.Path)
		}
		if hc.Type == "tcp" && hc.Path != "" {
			r.add(key+".healthCheck.path", `only http health checks have a path; remove it, or set type = "http"`)
		}
		for _, f := range []struct {
			k string
			v int
		}{{"timeoutSeconds", hc.TimeoutSeconds}, {"maxFailed", hc.MaxFailed}, {"intervalSeconds", hc.IntervalSeconds}} {
			if f.v < 1 {
				r.add(key+".healthCheck."+f.k, "%d is not allowed; use 1 or more", f.v)
			}
		}
	default:
		r.add(key+".healthCheck.type", `%q is not a health check type; use "tcp" (connect to the local service) or "http" (GET path, expecting 2xx)`, hc.Type)
	}
	switch m := t.BandwidthLimitMode; m {
	case "", BandwidthLimitClient, BandwidthLimitServer:
	default:
		r.add(key+".transport.bandwidthLimitMode", `%q is not a bandwidth limit mode; use "client" (hopc applies the limit, the default) or "server" (hops applies it)`, m)
	}
}
