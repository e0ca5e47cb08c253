package config

import (
	"cmp"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"
)

// People come to hop with frp's files. The keys below are frp's (v0.52+
// TOML, and the older INI names in camelCase) for things hop has under
// another name, or does not need; an unknown key that is one of them gets
// an explanation instead of a list of keys.

// frpKey is what hop says about one of frp's keys.
type frpKey struct {
	side string // "hops" or "hopc" when the key is only frp's server's or client's; "" for both
	// to is hop's key path (with [] for an array entry, as in
	// "visitors[].fallbackTimeout"); "" when hop has none.
	to string
	// unit is the unit frp counted an integer in ("s", "ms") when to is a
	// duration.
	unit string
	// negOff: frp turned the feature off with a negative number; hop
	// writes "0s".
	negOff bool
	// msg explains a key hop has no counterpart for, or adds to "hop
	// calls this ...".
	msg string
	// perHour: frp counted attempts per hour, hop sets the time between
	// two.
	perHour bool
}

// frpKeyNames is indexed by frp's key path, with [] for an array entry.
var frpKeyNames = map[string]frpKey{
	"transport.heartbeatInterval":       {to: "heartbeat.interval", unit: "s", negOff: true},
	"transport.heartbeatTimeout":        {to: "heartbeat.timeout", unit: "s", negOff: true},
	"heartbeatInterval":                 {to: "heartbeat.interval", unit: "s", negOff: true},
	"heartbeatTimeout":                  {to: "heartbeat.timeout", unit: "s", negOff: true},
	"transport.tcpMuxKeepaliveInterval": {to: "mux.keepaliveInterval", unit: "s", negOff: true},
	"tcpMuxKeepaliveInterval":           {to: "mux.keepaliveInterval", unit: "s", negOff: true},
	"transport.dialServerTimeout":       {side: "hopc", to: "transport.dialTimeout", unit: "s"},
	"dialServerTimeout":                 {side: "hopc", to: "transport.dialTimeout", unit: "s"},
	"transport.dialServerKeepalive":     {side: "hopc", to: "transport.tcpKeepalive.idle", unit: "s", negOff: true},
	"dialServerKeepalive":               {side: "hopc", to: "transport.tcpKeepalive.idle", unit: "s", negOff: true},
	"maxPortsPerClient":                 {side: "hops", to: "maxProxiesPerClient", msg: `which has no "0 = unlimited"`},
	"logFile":                           {to: "log.to"},
	"logLevel":                          {to: "log.level"},
	"dashboardAddr":                     {side: "hops", to: "webServer.addr"},
	"dashboardPort":                     {side: "hops", to: "webServer.port"},
	"visitors[].minRetryInterval":       {side: "hopc", to: "visitors[].retryInterval", unit: "s"},

	"transport.tcpMux":                        {msg: "hop always multiplexes: every connection is a stream of one yamux session; remove it"},
	"tcpMux":                                  {msg: "hop always multiplexes: every connection is a stream of one yamux session; remove it"},
	"auth.method":                             {msg: "hop has one method, a PAKE on auth.token (the token never crosses the wire, and a recorded login does not reveal it); remove it"},
	"authenticationMethod":                    {msg: "hop has one method, a PAKE on auth.token (the token never crosses the wire, and a recorded login does not reveal it); remove it"},
	"auth.additionalScopes":                   {msg: "hop authenticates the session once, and heartbeats and streams travel inside it; remove it"},
	"loginFailExit":                           {side: "hopc", msg: "hopc exits by itself on errors that reconnecting cannot fix (a wrong token, an incompatible version) and retries the others, also at boot; remove it"},
	"transport.tls.enable":                    {side: "hopc", msg: "hop always uses TLS; remove it"},
	"tlsEnable":                               {side: "hopc", msg: "hop always uses TLS; remove it"},
	"transport.tls.force":                     {side: "hops", msg: "hop always uses TLS; remove it"},
	"transport.poolCount":                     {side: "hopc", msg: "hop opens streams on demand in its one session, so there is no pool of connections; remove it"},
	"transport.protocol":                      {side: "hopc", msg: "hop connects over TCP with TLS only; remove it"},
	"log.disablePrintColor":                   {msg: "hop's logs have no colors; remove it"},
	"proxies[].localAddr":                     {side: "hopc", msg: "write the address in localIP and the port in localPort"},
	"proxies[].transport.useEncryption":       {side: "hopc", msg: "hop always encrypts (TLS to hops, and the secret key between visitor and owner); remove it"},
	"proxies[].transport.useCompression":      {side: "hopc", msg: "hop does not compress; remove it"},
	"natHoleStunServer":                       {side: "hopc", msg: "hopc asks hops for STUN (on its bindPort and p2p.stunAltPort), never a public server; remove it"},
	"transport.tls.disableCustomTLSFirstByte": {side: "hopc", msg: "hop sends plain TLS; remove it"},
	"visitors[].fallbackTo":                   {side: "hopc", msg: "an xtcp or xudp visitor starts every connection over hops' relay at once and moves it to the direct path when the punch succeeds; remove it"},
	"visitors[].fallbackTimeoutMs":            {side: "hopc", msg: "hop's xtcp and xudp connections never wait for the punch: they start over hops' relay and move to the direct path without a reset; remove it"},
	"visitors[].keepTunnelOpen":               {side: "hopc", msg: "hop keeps the direct path open by itself (keepaliveInterval) and, while relaying, tries it again every retryInterval; remove it"},
	"visitors[].maxRetriesAnHour":             {side: "hopc", to: "visitors[].retryInterval", perHour: true},

	// --- plugins
	"proxies[].plugin.enableHTTP2": {side: "hopc", msg: "hop's https2http speaks HTTP/1.1 to users (any HTTPS client falls back to it); remove it"},

	// --- migrate: the other keys of frp v0.52+ that hop has not, or has
	// in another form (hopc/hops migrate reads these; an entry for a table
	// covers every key below it).
	"dnsServer":                           {side: "hopc", msg: "hopc resolves serverAddr with the system's resolver; remove it, or write an IP address in serverAddr"},
	"start":                               {side: "hopc", msg: "hopc starts every proxy and visitor of its file; leave out those you do not want to start"},
	"includes":                            {side: "hopc", msg: "hop reads one file: run hopc migrate on each included file and add its [[proxies]] and [[visitors]] to this one"},
	"udpPacketSize":                       {msg: "hop carries each datagram whole (up to 65535 bytes) in its stream, so there is no packet size to agree on; remove it"},
	"featureGates":                        {side: "hopc", msg: "hop has no feature gates; remove it"},
	"virtualNet":                          {side: "hopc", msg: "hop has no virtual network (frp's is experimental): a socks5 plugin reaches the network behind a hopc"},
	"metadatas":                           {side: "hopc", msg: "hops has no server plugins that would read metadata; remove it"},
	"store":                               {side: "hopc", msg: "hopc has no store of proxies added through its API: write them in the file and run hopc reload"},
	"auth.tokenSource":                    {msg: `hop reads the token from the environment, not from a file or command: write auth.token = "${HOP_TOKEN}" and start with HOP_TOKEN set, e.g. HOP_TOKEN=$(cat FILE)`},
	"auth.oidc":                           {msg: "hop authenticates with auth.token only (a PAKE), not OIDC: give the clients a token, or each user a token of its own in hops' [[auth.users]]"},
	"transport.wireProtocol":              {side: "hopc", msg: "hop has one wire protocol (docs/PROTOCOL.md); remove it"},
	"transport.proxyURL":                  {side: "hopc", msg: "hopc connects to hops directly, not through an HTTP or SOCKS5 proxy; remove it"},
	"transport.quic":                      {msg: "hop connects over TCP with TLS only; remove it"},
	"transport.tls.certFile":              {side: "hopc", msg: "hopc presents no client certificate: hops authenticates it by its token; remove it"},
	"transport.tls.keyFile":               {side: "hopc", msg: "hopc presents no client certificate: hops authenticates it by its token; remove it"},
	"transport.tls.trustedCaFile":         {side: "hops", msg: "hops verifies no client certificates: it authenticates clients by their token; remove it"},
	"transport.tls.serverName":            {side: "hops", msg: "a name hops expects is set on the client (hopc's transport.tls.serverName); remove it"},
	"transport.maxPoolCount":              {side: "hops", msg: "hop opens streams on demand in one session per client, so there is no pool of connections; remove it"},
	"webServer.assetsDir":                 {msg: "hop's dashboard is built into the binary; remove it"},
	"webServer.pprofEnable":               {msg: "hop's web server has no pprof handlers; remove it"},
	"webServer.tls.trustedCaFile":         {msg: "hop's web server verifies no client certificates (it has webServer.user and password); remove it"},
	"webServer.tls.serverName":            {msg: "hop's web server is not a TLS client; remove it"},
	"kcpBindPort":                         {side: "hops", msg: "hop connects over TCP with TLS only, not KCP; remove it"},
	"quicBindPort":                        {side: "hops", msg: "hop connects over TCP with TLS only, not QUIC; remove it"},
	"detailedErrorsToClient":              {side: "hops", msg: "hops always tells a client why it refused a login or a proxy, with no internal details; remove it"},
	"userConnTimeout":                     {side: "hops", msg: "hops opens a stream of the client's session for each user connection at once, with no work connection to wait for; remove it"},
	"natholeAnalysisDataReserveHours":     {side: "hops", msg: "hops keeps no NAT analysis data (p2p.tallyInterval logs its counts of direct and relayed paths); remove it"},
	"sshTunnelGateway":                    {side: "hops", msg: "hop has no SSH tunnel gateway: run hopc next to the service instead"},
	"httpPlugins":                         {side: "hops", msg: "hops has no server plugins (HTTP hooks on Login, NewProxy...): per-user tokens ([[auth.users]]), allowPorts and maxProxiesPerClient cover the common uses"},
	"proxies[].enabled":                   {side: "hopc", msg: "hop has no enabled key: a proxy in the file is started; leave a disabled one out"},
	"visitors[].enabled":                  {side: "hopc", msg: "hop has no enabled key: a visitor in the file is started; leave a disabled one out"},
	"proxies[].annotations":               {side: "hopc", msg: "hop's dashboard shows no annotations; remove them (a comment in the file keeps the note)"},
	"proxies[].metadatas":                 {side: "hopc", msg: "hops has no server plugins that would read metadata; remove it"},
	"proxies[].healthCheck.httpHeaders":   {side: "hopc", msg: "hop's http health check sends no extra headers: the local service must answer the plain GET; remove it"},
	"proxies[].natTraversal":              {side: "hopc", msg: "hop's P2P offers every candidate address (local, learned by STUN, mapped by the gateway) and keeps the path that answers; remove it"},
	"visitors[].natTraversal":             {side: "hopc", msg: "hop's P2P offers every candidate address (local, learned by STUN, mapped by the gateway) and keeps the path that answers; remove it"},
	"visitors[].transport.useEncryption":  {side: "hopc", msg: "hop always encrypts (TLS to hops, and the secret key between visitor and owner); remove it"},
	"visitors[].transport.useCompression": {side: "hopc", msg: "hop does not compress; remove it"},
	"visitors[].protocol":                 {side: "hopc", msg: "hop's xtcp carries its streams over its own transport on the punched UDP path; remove it"},
	"visitors[].plugin":                   {side: "hopc", msg: "hop's visitors have no plugins (frp's virtual_net is experimental): put a socks5 plugin on the proxy instead"},
}

// FrpKey is what hop does with one of frp's keys (v0.52+), for
// hopc/hops migrate (package frpconf). The same table explains frp's keys
// in hop's error messages.
type FrpKey struct {
	// To is hop's key path (with [] for an array entry), or "" when hop
	// has none; then Msg says why and what to do instead.
	To string
	// Unit is the unit frp counted an integer in ("s", "ms") when To is a
	// duration; NegOff means frp turned the feature off with a negative
	// number (hop writes "0s"); PerHour means frp counted attempts per
	// hour where hop sets the time between two.
	Unit    string
	NegOff  bool
	PerHour bool
	// Msg explains a key hop has no counterpart for, or adds to To.
	Msg string
}

// LookupFrpKey returns what hop does with frp's key path (exact, with []
// for array entries, as in "visitors[].minRetryInterval") on side "hopc"
// or "hops". An entry for a table ("auth.oidc") is found by the table's
// path only.
func LookupFrpKey(side, path string) (FrpKey, bool) {
	h, ok := frpKeyNames[path]
	if !ok || (h.side != "" && h.side != side) {
		return FrpKey{}, false
	}
	return FrpKey{To: h.to, Unit: h.unit, NegOff: h.negOff, PerHour: h.perHour, Msg: h.msg}, true
}

// FrpOnlyPlugin says why hop has no plugin of frp's type t, and what to do
// instead; ok is false for the plugin types hop has (and unknown ones).
func FrpOnlyPlugin(t string) (msg string, ok bool) {
	msg, ok = frpOnlyPlugins[t]
	return msg, ok
}

// Kinds of hop's keys, as HopKeyKind returns them.
const (
	KindString   = "string"
	KindInt      = "int"
	KindBool     = "bool"
	KindDuration = "duration"
	KindStrings  = "strings" // an array of strings
	KindMap      = "map"     // a table of string values (requestHeaders.set)
	KindTables   = "tables"  // an array of tables ([[proxies]], allowPorts)
	KindTable    = "table"
)

// HopKeyKind returns the kind of hop's key path (with [] for an array
// entry) in the config of side "hopc" or "hops"; ok is false when hop has
// no such key.
func HopKeyKind(side, path string) (kind string, ok bool) {
	root := reflect.TypeOf(rawClient{})
	if side == "hops" {
		root = reflect.TypeOf(rawServer{})
	}
	t, ok := schemaType(root, path)
	if !ok {
		return "", false
	}
	switch {
	case t == rawTextType:
		return KindDuration, true
	case t.Kind() == reflect.String:
		return KindString, true
	case t.Kind() == reflect.Int64 || t.Kind() == reflect.Int:
		return KindInt, true
	case t.Kind() == reflect.Bool:
		return KindBool, true
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return KindStrings, true
	case t.Kind() == reflect.Slice:
		return KindTables, true
	case t.Kind() == reflect.Map:
		return KindMap, true
	}
	return KindTable, true
}

// frpKeys is frpKeyNames indexed by the key path without array indexes,
// folded by normKey (so "transport.heartbeat_timeout" matches too).
var frpKeys = foldKeys(frpKeyNames)

func foldKeys(m map[string]frpKey) map[string]frpKey {
	out := make(map[string]frpKey, len(m))
	for k, v := range m {
		out[foldPath(k)] = v
	}
	return out
}

var elemIndex = regexp.MustCompile(`\[[0-9]*\]`)

// pluginKey matches the path of a proxy's plugin table.
var pluginKey = regexp.MustCompile(`^proxies\[[0-9]+\]\.plugin$`)

// foldPath folds a key path for frpKeys: without array indexes, each part
// by normKey. "visitors[2].fallback_timeout_ms" → "visitors[].fallbacktimeoutms".
func foldPath(key string) string {
	return normKey(elemIndex.ReplaceAllString(key, "[]"))
}

// durationSuffixes are the endings of integer keys that carry their unit
// in the name (fallbackTimeoutMs, intervalSeconds), with that unit.
var durationSuffixes = []struct{ suffix, unit string }{
	{"milliseconds", "ms"}, {"millis", "ms"}, {"ms", "ms"},
	{"seconds", "s"}, {"secs", "s"}, {"sec", "s"},
	{"minutes", "m"}, {"mins", "m"},
}

// msDurationKeys are hop's duration keys whose frp counterpart counted
// milliseconds, so that a bare number there most likely means ms.
var msDurationKeys = map[string]bool{"fallbackTimeout": true}

// frpHint explains an unknown key (the last part of key) that is one of
// frp's, or an integer key with its unit in the name. en is its entry in
// the document. ok is false when there is nothing to say.
func frpHint(root reflect.Type, ix *index, key string, en entry) (msg, meant string, ok bool) {
	side := "hopc"
	if root == reflect.TypeOf(rawServer{}) {
		side = "hops"
	}
	if h, found := frpKeys[foldPath(key)]; found && (h.side == "" || h.side == side) {
		if h.to == "" {
			return h.msg, "", true
		}
		if to, exists := hopKey(root, key, h.to); exists {
			return renamed(root, ix, key, to, h, en), to, true
		}
	}
	// A key below a table of frp's that hop has not ("auth.oidc.clientID").
	for p := parentPath(key); p != ""; p = parentPath(p) {
		if h, found := frpKeys[foldPath(p)]; found && h.to == "" && (h.side == "" || h.side == side) {
			return h.msg, "", true
		}
	}
	// fooTimeoutMs = 1500: the name carries the unit of a duration key.
	parent, last := parentPath(key), key[len(parentPath(key)):]
	last = strings.TrimPrefix(last, ".")
	low := strings.ToLower(last)
	for _, s := range durationSuffixes {
		stem := last[:max(0, len(last)-len(s.suffix))]
		if !strings.HasSuffix(low, s.suffix) || stem == "" {
			continue
		}
		h := frpKey{unit: s.unit}
		if fh, found := frpKeys[foldPath(join(parent, stem))]; found && fh.to != "" && (fh.side == "" || fh.side == side) {
			h.to, h.negOff = fh.to, fh.negOff
		} else if t, found := schemaType(root, parent); found && t.Kind() == reflect.Struct {
			for _, k := range keysOf(t) {
				if normKey(k) == normKey(stem) {
					h.to = join(elemIndex.ReplaceAllString(parent, "[]"), k)
				}
			}
		}
		if h.to == "" {
			continue
		}
		if to, exists := hopKey(root, key, h.to); exists && isDuration(root, to) {
			return renamed(root, ix, key, to, h, en), to, true
		}
	}
	return "", "", false
}

// hopKey resolves a path of frpKeys ("visitors[].retryInterval") against
// the key being explained ("visitors[3].minRetryInterval" gives
// "visitors[3].retryInterval") and reports whether hop has it.
func hopKey(root reflect.Type, key, to string) (string, bool) {
	if strings.Contains(to, "[]") {
		m := elemIndex.FindString(key)
		if m == "" {
			return "", false
		}
		to = strings.Replace(to, "[]", m, 1)
	}
	_, ok := schemaType(root, to)
	return to, ok
}

func isDuration(root reflect.Type, key string) bool {
	t, ok := schemaType(root, key)
	return ok && t == rawTextType
}

// renamed says that hop calls key to, and how to write the value of en
// there.
func renamed(root reflect.Type, ix *index, key, to string, h frpKey, en entry) string {
	name := to
	if tp := parentPath(to); tp == parentPath(key) && strings.HasSuffix(tp, "]") {
		name = strings.TrimPrefix(to[len(tp):], ".") // a key of the same [[entry]]
	}
	msg := "hop calls this " + name
	if !isDuration(root, to) {
		if h.msg != "" {
			msg += ", " + h.msg
			if en.kind == unstable.Integer && en.text == "0" && to == "maxProxiesPerClient" {
				msg += fmt.Sprintf(": set a number, e.g. %s = %d", to, DefaultMaxProxiesPerClient)
			}
		}
		return msg
	}
	value, note := durationValue(en, h)
	if h.perHour {
		value, note = perHourValue(en)
	}
	return fmt.Sprintf("%s, a duration string%s: write %s", msg, note, placeKey(en, to, strconv.Quote(value)))
}

// durationValue turns frp's value of a duration key into hop's: 90 in
// seconds is "90s"; a negative number, where that turned the feature
// off, is "0s".
func durationValue(en entry, h frpKey) (value, note string) {
	unit := cmp.Or(h.unit, "s")
	text := strings.ReplaceAll(en.text, "_", "")
	switch en.kind {
	case unstable.Integer, unstable.Float:
		if strings.HasPrefix(text, "-") && h.negOff {
			return "0s", `; frp turned it off with a negative number, hop with "0s"`
		}
		if _, err := strconv.ParseFloat(text, 64); err == nil && !strings.HasPrefix(text, "-") {
			return strings.TrimPrefix(text, "+") + unit, ""
		}
	case unstable.String:
		if isNumber(text) && !strings.HasPrefix(text, "-") {
			return text + unit, ""
		}
		if _, err := parseDuration(text); err == nil {
			return text, ""
		}
	}
	if unit == "ms" {
		return "500ms", ""
	}
	return "10s", ""
}

// perHourValue turns frp's attempts per hour into the time between two.
func perHourValue(en entry) (value, note string) {
	n, err := strconv.Atoi(strings.ReplaceAll(en.text, "_", ""))
	if en.kind != unstable.Integer || err != nil || n < 1 {
		return "7m30s", " of the time between attempts"
	}
	return formatDuration(time.Hour / time.Duration(n)), fmt.Sprintf(" of the time between attempts (%d an hour)", n)
}

// placeKey says how to write to = value where key (whose entry is en)
// is written: the path of to from the table header en is below, when to
// is inside it ("transport.heartbeatTimeout = 90" at the top level gives
// heartbeat.timeout = "90s"; fallbackTimeoutMs in [[visitors]] gives
// fallbackTimeout = ...), else its last part below the header of its
// table.
func placeKey(en entry, to, value string) string {
	if under := en.under; under == "" || strings.HasPrefix(to, under+".") {
		return strings.TrimPrefix(to, under+".") + " = " + value
	}
	tp := parentPath(to)
	return fmt.Sprintf("%s = %s below %s", strings.TrimPrefix(to[len(tp):], "."), value, header(tp))
}

// typeHint adds to a type error at en what frp meant by a value of that
// type there, or returns "".
func typeHint(en entry) string {
	if pluginKey.MatchString(en.path) && en.kind == unstable.String {
		return fmt.Sprintf(`; frp's INI format named the plugin here, hop's (and frp's TOML) is a table: write [proxies.plugin] below the proxy, with type = %q and the plugin's keys`, en.text)
	}
	if en.path == "transport.tcpKeepalive" && en.kind == unstable.Integer {
		v, _ := durationValue(en, frpKey{unit: "s", negOff: true})
		return fmt.Sprintf(`; frp's transport.tcpKeepalive counted seconds, hop's is a table: write transport.tcpKeepalive.idle = %q (idle = "0s" turns it off)`, v)
	}
	return ""
}
