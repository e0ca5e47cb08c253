package config

// --- nodeset: serverAddrs, the several hops nodes a hopc attaches to
// (issue 13). pkg/nodeset turns ServerEndpoints into the nodes to dial.

import (
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxServerAddrs is the most entries serverAddrs may have: hopc keeps a
// session (login, heartbeat, registered proxies) to every node.
const MaxServerAddrs = 16

// ServerEndpoints returns the hops nodes to attach to, host:port each:
// ServerAddrs, or ServerAddr:ServerPort when ServerAddrs is empty. The
// slice is the caller's.
func (c *ClientConfig) ServerEndpoints() []string {
	if len(c.ServerAddrs) > 0 {
		return slices.Clone(c.ServerAddrs)
	}
	return []string{c.ServerAddress()}
}

// serverAddrs converts serverAddrs. A list with entries excludes
// serverAddr and serverPort: whichever of them the file writes is
// reported, whatever its value (even the default), since the file would
// name two sets of servers. Both are then cleared, so that nothing reads
// a default address that is not used. An empty list is the default, the
// single server of serverAddr and serverPort.
func (c conv) serverAddrs(cfg *ClientConfig, v *rawClient) {
	if v.ServerAddrs == nil || len(*v.ServerAddrs) == 0 {
		return
	}
	cfg.ServerAddrs = slices.Clone(*v.ServerAddrs)
	cfg.ServerAddr, cfg.ServerPort = "", 0
	for _, k := range []struct {
		key string
		set bool
	}{{"serverAddr", v.ServerAddr != nil}, {"serverPort", v.ServerPort != nil}} {
		if k.set {
			c.r.add(k.key, `set together with serverAddrs%s; use one or the other: serverAddrs = ["host:port", ...] lists every hops node, serverAddr and serverPort name a single one`, c.r.at("serverAddrs"))
		}
	}
}

// validateServerAddrs checks ServerAddrs and reports whether it is in use
// (not empty), in which case ServerAddr and ServerPort are not checked.
func (c *ClientConfig) validateServerAddrs(r *reporter) bool {
	if len(c.ServerAddrs) == 0 {
		return false
	}
	if len(c.ServerAddrs) > MaxServerAddrs {
		r.add("serverAddrs", "has %d entries; list at most %d hops nodes (hopc keeps a session to each)", len(c.ServerAddrs), MaxServerAddrs)
	}
	seen := make(map[string]string) // normalized host:port → key of the entry
	for i, a := range c.ServerAddrs {
		key := "serverAddrs[" + strconv.Itoa(i) + "]"
		if !r.ok(key) {
			continue
		}
		norm, problem := checkEndpoint(a)
		if problem != "" {
			r.add(key, "%s", problem)
			continue
		}
		if prev, dup := seen[norm]; dup {
			r.add(key, "%q is the same node as %s%s; list each hops node once", a, prev, r.at(prev))
			continue
		}
		seen[norm] = key
	}
	return true
}

// hostNameRE is a host name: labels of letters, digits, - and _ (not
// starting or ending with -), separated by dots, with an optional final
// dot.
var hostNameRE = regexp.MustCompile(`^([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.?$`)

// digitsRE is what a port, and a dotted IPv4 address without its dots,
// consist of.
var digitsRE = regexp.MustCompile(`^[0-9]+$`)

// checkEndpoint checks one serverAddrs entry. It returns the entry in a
// normal form that two spellings of one node share (lower-case name
// without a final dot, IP address in its shortest form, port without
// leading zeros), or a problem saying what is wrong and how to fix it.
func checkEndpoint(s string) (norm, problem string) {
	const eg = `e.g. "10.0.0.1:7000" or "hops1.example.com:7000"`
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		switch {
		case strings.TrimSpace(s) == "":
			return "", "empty; write host:port, " + eg
		case !strings.Contains(s, ":"):
			return "", strconv.Quote(s) + " has no port; write host:port, e.g. " + strconv.Quote(s+":7000")
		case !strings.ContainsAny(s, "[]") && isIP(s):
			return "", strconv.Quote(s) + ` is an IPv6 address without a port; write the address in brackets followed by :port, e.g. "[2001:db8::1]:7000"`
		case strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "["):
			return "", strconv.Quote(s) + ` has too many colons; write an IPv6 address in brackets followed by :port, e.g. "[2001:db8::1]:7000"`
		default:
			why := err.Error()
			if ae, ok := err.(*net.AddrError); ok {
				why = ae.Err
			}
			return "", strconv.Quote(s) + " is not host:port (" + why + "); write host:port, " + eg
		}
	}
	if host == "" {
		return "", strconv.Quote(s) + " has no host; write host:port, " + eg
	}
	if port == "" {
		return "", strconv.Quote(s) + " has no port after the colon; write host:port, " + eg
	}
	n, err := strconv.Atoi(port)
	if !digitsRE.MatchString(port) || err != nil {
		return "", strconv.Quote(s) + ": port " + strconv.Quote(port) + " is not a number; write host:port with the bindPort of hops, " + eg
	}
	if n < 1 || n > 65535 {
		return "", strconv.Quote(s) + ": port " + port + " is out of range; use 1-65535"
	}
	if strings.HasPrefix(s, "[") && !isIP(host) {
		return "", strconv.Quote(s) + ": " + strconv.Quote(host) + " is not an IP address; brackets are for IPv6 addresses: write " + strconv.Quote(host+":"+port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(n)), ""
	}
	if strings.Contains(host, ":") {
		return "", strconv.Quote(s) + ": " + strconv.Quote(host) + " is not an IPv6 address; write a valid one in brackets, e.g. \"[2001:db8::1]:7000\""
	}
	if digitsRE.MatchString(strings.ReplaceAll(host, ".", "")) {
		return "", strconv.Quote(s) + ": " + strconv.Quote(host) + " is not a valid IPv4 address; write four numbers 0-255 separated by dots, e.g. \"10.0.0.1:7000\""
	}
	if len(host) > 254 || !hostNameRE.MatchString(host) {
		return "", strconv.Quote(s) + ": " + strconv.Quote(host) + " is not a host name or IP address; use letters, digits, - and . (e.g. \"hops1.example.com:7000\")"
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")) + ":" + strconv.Itoa(n), ""
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
