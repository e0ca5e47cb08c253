package config

// errorCase is TOML text and the exact error text parsing it must give
// ("" for success). The tables seed the fuzz targets too.
type errorCase struct {
	name string
	toml string
	env  map[string]string // set for the case; a "" value is set but empty
	want string
}

const tokenLine = "auth.token = \"s3cret\"\n"

var serverCases = []errorCase{
	{name: "minimal", toml: tokenLine},
	{name: "unknown top-level key", toml: tokenLine + "bindPrt = 7000\n", want: "hops.toml:2: bindPrt: unknown key; did you mean bindPort?"},
	{name: "snake case key", toml: tokenLine + "bind_port = 7000\n", want: "hops.toml:2: bind_port: unknown key; did you mean bindPort?"},
	{name: "frp v0 token", toml: "token = \"x\"\n", want: "hops.toml:1: token: unknown key; did you mean auth.token?"},
	{name: "unknown key in table", toml: tokenLine + "[transport]\nhandshake = \"5s\"\n", want: "hops.toml:3: transport.handshake: unknown key; the keys in [transport] are: tls, handshakeTimeout, tcpKeepalive"},
	{name: "unknown table", toml: tokenLine + "[transport.tsl]\ncertFile = \"a\"\n", want: "hops.toml:2: transport.tsl: unknown table; did you mean transport.tls?"},
	{name: "top-level key below a table", toml: "[auth]\ntoken = \"x\"\nbindPort = 7001\n", want: "hops.toml:3: auth.bindPort: unknown key; bindPort is a top-level key, but keys below [auth] belong to that table: move it above the first [table] header"},
	{name: "bare number duration", toml: tokenLine + "gracePeriod = 10\n", want: "hops.toml:2: gracePeriod: 10 is a bare number; durations are strings with a unit: write \"10s\" (units: ms, s, m, h)"},
	{name: "float duration", toml: tokenLine + "[heartbeat]\ninterval = 1.5\n", want: "hops.toml:3: heartbeat.interval: 1.5 is a bare number; durations are strings with a unit: write \"1.5s\" (units: ms, s, m, h)"},
	{name: "bool duration", toml: tokenLine + "[heartbeat]\ninterval = true\n", want: "hops.toml:3: heartbeat.interval: true is not a duration; write a string with a unit, e.g. \"10s\" (units: ms, s, m, h)"},
	{name: "unit-less duration", toml: tokenLine + "[transport]\nhandshakeTimeout = \"10\"\n", want: "hops.toml:3: transport.handshakeTimeout: \"10\" has no unit; add one, e.g. \"10s\" (units: ms, s, m, h)"},
	{name: "unit-less zero duration", toml: tokenLine + "gracePeriod = \"0\"\n", want: "hops.toml:2: gracePeriod: \"0\" has no unit; add one, e.g. \"0s\" (units: ms, s, m, h)"},
	{name: "bad duration", toml: tokenLine + "gracePeriod = \"10 s\"\n", want: "hops.toml:2: gracePeriod: \"10 s\" is not a valid duration; write a number with a unit, e.g. \"10s\", \"500ms\" or \"1m30s\" (units: ms, s, m, h)"},
	{name: "negative duration", toml: tokenLine + "gracePeriod = \"-1s\"\n", want: "hops.toml:2: gracePeriod: -1s is negative; use \"0s\" or more (\"0s\" closes connections at once on shutdown)"},
	{name: "bad log level", toml: tokenLine + "[log]\nlevel = \"verbose\"\n", want: "hops.toml:3: log.level: \"verbose\" is not a log level; use one of: debug, info, warn, error"},
	{name: "log level case", toml: tokenLine + "log.level = \"INFO\"\n", want: "hops.toml:2: log.level: \"INFO\" is not a log level; use one of: debug, info, warn, error"},
	{name: "empty log to", toml: tokenLine + "log.to = \"\"\n", want: "hops.toml:2: log.to: empty; use \"stderr\", \"stdout\" or a file path"},
	{name: "port out of range", toml: tokenLine + "bindPort = 70000\n", want: "hops.toml:2: bindPort: 70000 is out of range; use 1-65535"},
	{name: "port zero", toml: tokenLine + "bindPort = 0\n", want: "hops.toml:2: bindPort: 0 is out of range; use 1-65535"},
	{name: "huge integer", toml: tokenLine + "bindPort = 99999999999999999999\n", want: "hops.toml:2: bindPort: invalid TOML: decimal number is too large to fit in a 64-bit signed integer"},
	{name: "port as string", toml: tokenLine + "bindPort = \"7000\"\n", want: "hops.toml:2: bindPort: expected an integer (no quotes), found a string"},
	{name: "several type errors", toml: tokenLine + "bindPort = \"7000\"\nbindAddr = 0\n[heartbeat]\ninterval = [\"10s\"]\n[[log]]\n", want: "hops.toml:2: bindPort: expected an integer (no quotes), found a string\n" +
		"hops.toml:3: bindAddr: expected a string in double quotes, found an integer\n" +
		"hops.toml:5: heartbeat.interval: expected a duration string with a unit, e.g. \"10s\", found an array\n" +
		"hops.toml:6: log: expected a table, found an array of tables"},
	{name: "addr with port", toml: tokenLine + "bindAddr = \"0.0.0.0:7000\"\n", want: "hops.toml:2: bindAddr: \"0.0.0.0:7000\" looks like host:port; write only the host here and the port in bindPort"},
	{name: "ipv6 addr", toml: tokenLine + "bindAddr = \"::\"\nproxyBindAddr = \"::1\"\n"},
	{name: "missing token", toml: "bindPort = 7000\n", want: "hops.toml: auth.token: missing or empty; set the secret shared by server and clients, e.g. auth.token = \"${HOP_TOKEN}\" with HOP_TOKEN exported"},
	{name: "empty token", toml: "[auth]\ntoken = \"\"\n", want: "hops.toml:2: auth.token: missing or empty; set the secret shared by server and clients, e.g. auth.token = \"${HOP_TOKEN}\" with HOP_TOKEN exported"},
	{name: "allowPorts forms", toml: tokenLine + "allowPorts = [\n  { start = 2000, end = 3000 },\n  { single = 3001 },\n]\n"},
	{name: "allowPorts bad forms", toml: tokenLine + "allowPorts = [\n  { start = 2000 },\n  { end = 3000 },\n  { single = 1, start = 1, end = 2 },\n  {},\n  { start = 3000, end = 2000 },\n  { single = 0 },\n  { start = 1, end = 65536 },\n  { single = 5, port = 5 },\n]\n", want: "hops.toml:3: allowPorts[0]: has start but no end; write { start = 2000, end = 3000 } or { single = 3001 }\n" +
		"hops.toml:4: allowPorts[1]: has end but no start; write { start = 2000, end = 3000 } or { single = 3001 }\n" +
		"hops.toml:5: allowPorts[2]: has both single and start/end; write { start = 2000, end = 3000 } or { single = 3001 }, not both\n" +
		"hops.toml:6: allowPorts[3]: is empty; write { start = 2000, end = 3000 } or { single = 3001 }\n" +
		"hops.toml:7: allowPorts[4]: start 3000 is greater than end 2000; swap them\n" +
		"hops.toml:8: allowPorts[5].single: 0 is out of range; use 1-65535\n" +
		"hops.toml:9: allowPorts[6].end: 65536 is out of range; use 1-65535\n" +
		"hops.toml:10: allowPorts[7].port: unknown key; the keys in [[allowPorts]] are: start, end, single"},
	{name: "allowPorts not tables", toml: tokenLine + "allowPorts = [2000, 3000]\n", want: "hops.toml:2: allowPorts[0]: expected a table, found an integer\n" +
		"hops.toml:2: allowPorts[1]: expected a table, found an integer"},
	{name: "allowPorts as table", toml: tokenLine + "[allowPorts]\nstart = 1\nend = 2\n", want: "hops.toml:2: allowPorts: written as a table; allowPorts must be an array: allowPorts = [{ start = 2000, end = 3000 }, { single = 3001 }]"},
	{name: "negative maxProxiesPerClient", toml: tokenLine + "maxProxiesPerClient = -1\n", want: "hops.toml:2: maxProxiesPerClient: -1 is negative; use 0 for no limit or a positive number"},
	{name: "tls cert without key", toml: tokenLine + "[transport.tls]\ncertFile = \"server.crt\"\n", want: "hops.toml:3: transport.tls.certFile: set without transport.tls.keyFile; set both to use your own certificate, or neither to use a generated self-signed one"},
	{name: "tls key without cert", toml: tokenLine + "[transport.tls]\nkeyFile = \"server.key\"\n", want: "hops.toml:3: transport.tls.keyFile: set without transport.tls.certFile; set both to use your own certificate, or neither to use a generated self-signed one"},
	{name: "tls files missing", toml: tokenLine + "[transport.tls]\ncertFile = \"/nonexistent/server.crt\"\nkeyFile = \"/nonexistent/server.key\"\n", want: "hops.toml:3: transport.tls.certFile: cannot read certificate file \"/nonexistent/server.crt\": no such file or directory; check the path (relative paths start at the working directory)\n" +
		"hops.toml:4: transport.tls.keyFile: cannot read key file \"/nonexistent/server.key\": no such file or directory; check the path (relative paths start at the working directory)"},
	{name: "zero handshake timeout", toml: tokenLine + "transport.handshakeTimeout = \"0s\"\n", want: "hops.toml:2: transport.handshakeTimeout: 0s is not allowed; use a positive duration such as \"10s\""},
	{name: "tcp keepalive", toml: tokenLine + "[transport.tcpKeepalive]\ninterval = \"0s\"\ncount = 0\n", want: "hops.toml:3: transport.tcpKeepalive.interval: 0s is not allowed; use a positive duration such as \"10s\" (to disable TCP keepalive set idle = \"0s\")\n" +
		"hops.toml:4: transport.tcpKeepalive.count: 0 is out of range; use 1-100 (unanswered probes before the connection is dropped)"},
	{name: "tcp keepalive disabled", toml: tokenLine + "[transport.tcpKeepalive]\nidle = \"0s\"\ninterval = \"0s\"\ncount = 0\n"},
	{name: "heartbeat interval equals timeout", toml: tokenLine + "[heartbeat]\ninterval = \"30s\"\ntimeout = \"30s\"\n", want: "hops.toml:3: heartbeat.interval: 30s is not shorter than heartbeat.timeout (30s), so a healthy peer would time out between two heartbeats; set heartbeat.timeout to at least 3× the interval (\"1m30s\") or shorten the interval"},
	{name: "heartbeat interval above timeout", toml: tokenLine + "[heartbeat]\ninterval = \"1m\"\ntimeout = \"30s\"\n", want: "hops.toml:3: heartbeat.interval: 1m is not shorter than heartbeat.timeout (30s), so a healthy peer would time out between two heartbeats; set heartbeat.timeout to at least 3× the interval (\"3m\") or shorten the interval"},
	{name: "heartbeat disabled", toml: tokenLine + "[heartbeat]\ninterval = \"0s\"\ntimeout = \"0s\"\n"},
	{name: "mux", toml: tokenLine + "[mux]\nkeepaliveTimeout = \"0s\"\nmaxStreamWindow = 1024\n", want: "hops.toml:3: mux.keepaliveTimeout: 0s is not allowed; use a positive duration such as \"10s\" (it also bounds every write on the connection)\n" +
		"hops.toml:4: mux.maxStreamWindow: 1024 is out of range; use 262144-16777216 (bytes, 256 KiB to 16 MiB)"},
	{name: "env set", toml: "auth.token = \"${HOP_TEST_TOKEN}\"\n", env: map[string]string{"HOP_TEST_TOKEN": "t"}},
	{name: "env unset", toml: "bindPort = 7000\n[auth]\ntoken = \"${HOP_TEST_UNSET}\"\n", want: "hops.toml:3: auth.token: environment variable HOP_TEST_UNSET is not set (referenced as ${HOP_TEST_UNSET}); export it or write the value directly"},
	{name: "env empty", toml: "auth.token = \"${HOP_TEST_EMPTY}\"\n", env: map[string]string{"HOP_TEST_EMPTY": ""}, want: "hops.toml:1: auth.token: missing or empty; set the secret shared by server and clients, e.g. auth.token = \"${HOP_TOKEN}\" with HOP_TOKEN exported"},
	{name: "env escaped", toml: "auth.token = \"$${HOP_TEST_UNSET}\"\n"},
	{name: "env bad reference", toml: "auth.token = \"${HOP-TOKEN} and ${OOPS\"\n", want: "hops.toml:1: auth.token: \"${HOP-TOKEN}\" is not a valid variable reference; names are letters, digits and _ not starting with a digit (write $${ for a literal \"${\")\n" +
		"hops.toml:1: auth.token: \"${\" without a closing \"}\"; write ${NAME}, or $${ for a literal \"${\""},
	{name: "env in duration", toml: tokenLine + "gracePeriod = \"${HOP_TEST_GRACE}\"\n", env: map[string]string{"HOP_TEST_GRACE": "7"}, want: "hops.toml:2: gracePeriod: \"7\" has no unit; add one, e.g. \"7s\" (units: ms, s, m, h)"},
	{name: "syntax error", toml: tokenLine + "bindPort = \n", want: "hops.toml:2: invalid TOML: unexpected character U+000A at start of value"},
	{name: "duplicate key", toml: tokenLine + "bindPort = 1\nbindPort = 2\n", want: "hops.toml:3: bindPort: invalid TOML: key bindPort is already defined"},
	{name: "many problems", toml: "bindPort = 0\nbogus = 1\n\n[heartbeat]\ninterval = 10\ntimeout = \"5\"\n\n[log]\nlevel = \"trace\"\n\n[mux]\nmaxStreamWindow = 0\n", want: "hops.toml:1: bindPort: 0 is out of range; use 1-65535\n" +
		"hops.toml:2: bogus: unknown key; the keys at the top level are: bindAddr, bindPort, proxyBindAddr, auth, allowPorts, maxProxiesPerClient, gracePeriod, transport, heartbeat, mux, log, p2p, webServer\n" +
		"hops.toml:5: heartbeat.interval: 10 is a bare number; durations are strings with a unit: write \"10s\" (units: ms, s, m, h)\n" +
		"hops.toml:6: heartbeat.timeout: \"5\" has no unit; add one, e.g. \"5s\" (units: ms, s, m, h)\n" +
		"hops.toml:9: log.level: \"trace\" is not a log level; use one of: debug, info, warn, error\n" +
		"hops.toml:12: mux.maxStreamWindow: 0 is out of range; use 262144-16777216 (bytes, 256 KiB to 16 MiB)\n" +
		"hops.toml: auth.token: missing or empty; set the secret shared by server and clients, e.g. auth.token = \"${HOP_TOKEN}\" with HOP_TOKEN exported"},
}

var clientCases = []errorCase{
	{name: "minimal", toml: tokenLine},
	{name: "proxies", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n\n[[proxies]]\nname = \"dns\"\ntype = \"udp\"\nlocalIP = \"10.0.0.53\"\nlocalPort = 53\nremotePort = 0\nidleTimeout = \"2m\"\n"},
	{name: "unknown key in proxy", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n\n[[proxies]]\nname = \"web\"\ntype = \"tcp\"\nlocalPort = 80\nremotePort = 8080\nlocal_ip = \"127.0.0.1\"\ncustomDomains = [\"a\"]\n", want: "hopc.toml:13: proxies[1].local_ip: unknown key; did you mean localIP?\n" +
		"hopc.toml:14: proxies[1].customDomains: unknown key; the keys in [[proxies]] are: name, type, localIP, localPort, remotePort, idleTimeout, secretKey, allowUsers"},
	{name: "proxy key at top level", toml: tokenLine + "localPort = 22\n", want: "hopc.toml:2: localPort: unknown key; localPort is a key of [[proxies]] entries: put it below a [[proxies]] header"},
	{name: "misspelled visitors", toml: tokenLine + "[[visitor]]\nname = \"v\"\n", want: "hopc.toml:2: visitor: unknown table; did you mean visitors?"},
	{name: "duplicate proxy names", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 2222\nremotePort = 6002\n", want: "hopc.toml:9: proxies[1].name: \"ssh\" is already the name of proxies[0] (line 2); proxy names must be unique"},
	{name: "duplicate remote port", toml: tokenLine + "[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n[[proxies]]\nname = \"b\"\ntype = \"udp\"\nlocalPort = 53\nremotePort = 6000\n[[proxies]]\nname = \"c\"\ntype = \"tcp\"\nlocalPort = 23\nremotePort = 6000\n[[proxies]]\nname = \"d\"\ntype = \"tcp\"\nlocalPort = 24\nremotePort = 0\n[[proxies]]\nname = \"e\"\ntype = \"tcp\"\nlocalPort = 25\nremotePort = 0\n", want: "hopc.toml:16: proxies[2].remotePort: tcp port 6000 is already used by proxies[0] (line 2); use another port, or 0 to let the server choose"},
	{name: "missing proxy keys", toml: tokenLine + "\n[[proxies]]\nlocalIP = \"127.0.0.1\"\n", want: "hopc.toml:3: proxies[0].name: missing; every proxy needs a unique name, e.g. name = \"ssh\"\n" +
		"hopc.toml:3: proxies[0].type: missing; add type = \"tcp\" (one of: tcp, udp, stcp, sudp, xtcp, xudp)\n" +
		"hopc.toml:3: proxies[0].localPort: missing; add the port of the local service, e.g. localPort = 22\n" +
		"hopc.toml:3: proxies[0].remotePort: missing; add the public port on the server, e.g. remotePort = 6000, or remotePort = 0 to let the server choose"},
	{name: "missing proxy keys inline", toml: tokenLine + "proxies = [\n  { name = \"a\", type = \"tcp\", localPort = 22, remotePort = 1 },\n  { name = \"b\" },\n]\n", want: "hopc.toml:4: proxies[1].type: missing; add type = \"tcp\" (one of: tcp, udp, stcp, sudp, xtcp, xudp)\n" +
		"hopc.toml:4: proxies[1].localPort: missing; add the port of the local service, e.g. localPort = 22\n" +
		"hopc.toml:4: proxies[1].remotePort: missing; add the public port on the server, e.g. remotePort = 6000, or remotePort = 0 to let the server choose"},
	{name: "proxies as table", toml: tokenLine + "[proxies]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n", want: "hopc.toml:2: proxies: written as a table; proxies must be an array: write [[proxies]] (double brackets) once per proxy"},
	{name: "bad proxy type", toml: tokenLine + "[[proxies]]\nname = \"web\"\ntype = \"http\"\nlocalPort = 80\nremotePort = 8080\nidleTimeout = \"5\"\n", want: "hopc.toml:4: proxies[0].type: \"http\" is not a proxy type; use one of: tcp, udp, stcp, sudp, xtcp, xudp\n" +
		"hopc.toml:7: proxies[0].idleTimeout: \"5\" has no unit; add one, e.g. \"5s\" (units: ms, s, m, h)"},
	{name: "bad proxy name", toml: tokenLine + "[[proxies]]\nname = \"my proxy\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n", want: "hopc.toml:3: proxies[0].name: \"my proxy\" is not a valid proxy name; use 1-64 of A-Z a-z 0-9 . _ -"},
	{name: "proxy ports out of range", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 0\nremotePort = 70000\n[[proxies]]\nname = \"ssh2\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = -1\n", want: "hopc.toml:5: proxies[0].localPort: 0 is out of range; use 1-65535 (the port of the local service)\n" +
		"hopc.toml:6: proxies[0].remotePort: 70000 is out of range; use 0-65535 (0 lets the server choose)\n" +
		"hopc.toml:11: proxies[1].remotePort: -1 is out of range; use 0-65535 (0 lets the server choose)"},
	{name: "idleTimeout on tcp", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\nidleTimeout = \"0s\"\n", want: "hopc.toml:7: proxies[0].idleTimeout: only udp, sudp and xudp proxies have an idle timeout; remove it from this tcp proxy"},
	{name: "udp idleTimeout zero", toml: tokenLine + "[[proxies]]\nname = \"dns\"\ntype = \"udp\"\nlocalPort = 53\nremotePort = 6001\nidleTimeout = \"0s\"\n", want: "hopc.toml:7: proxies[0].idleTimeout: 0s is not allowed; use a positive duration such as \"10s\" (how long a UDP peer may stay silent)"},
	{name: "udp idleTimeout bare number", toml: tokenLine + "[[proxies]]\nname = \"dns\"\ntype = \"udp\"\nlocalPort = 53\nremotePort = 6001\nidleTimeout = 60\n", want: "hopc.toml:7: proxies[0].idleTimeout: 60 is a bare number; durations are strings with a unit: write \"60s\" (units: ms, s, m, h)"},
	{name: "empty localIP", toml: tokenLine + "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalIP = \"\"\nlocalPort = 22\nremotePort = 6000\n", want: "hopc.toml:5: proxies[0].localIP: empty; write a host name or IP address"},
	{name: "serverAddr", toml: tokenLine + "serverAddr = \"\"\nserverPort = 0\n", want: "hopc.toml:2: serverAddr: empty; write a host name or IP address\n" +
		"hopc.toml:3: serverPort: 0 is out of range; use 1-65535"},
	{name: "serverAddr with port", toml: tokenLine + "serverAddr = \"example.com:7000\"\n", want: "hopc.toml:2: serverAddr: \"example.com:7000\" looks like host:port; write only the host here and the port in serverPort"},
	{name: "clientID", toml: tokenLine + "clientID = \"laptop/1\"\n", want: "hopc.toml:2: clientID: \"laptop/1\" is not a valid client ID; use 1-64 of A-Z a-z 0-9 . _ - (or leave it empty to get one per process)"},
	{name: "clientID ok", toml: tokenLine + "clientID = \"laptop-1.home_A\"\n"},
	{name: "certSHA256", toml: tokenLine + "transport.tls.certSHA256 = \"AB:CD\"\n", want: "hopc.toml:2: transport.tls.certSHA256: \"AB:CD\" is not a SHA-256 fingerprint; write 64 hex digits, colons allowed (openssl x509 -in cert.pem -noout -fingerprint -sha256 prints one)"},
	{name: "certSHA256 ok", toml: tokenLine + "transport.tls.certSHA256 = \"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\"\n"},
	{name: "trustedCaFile missing", toml: tokenLine + "[transport.tls]\ntrustedCaFile = \"/nonexistent/ca.pem\"\n", want: "hopc.toml:3: transport.tls.trustedCaFile: cannot read CA file \"/nonexistent/ca.pem\": no such file or directory; check the path (relative paths start at the working directory)"},
	{name: "timeouts", toml: tokenLine + "[transport]\ndialTimeout = \"0s\"\nhandshakeTimeout = \"-1s\"\n", want: "hopc.toml:3: transport.dialTimeout: 0s is not allowed; use a positive duration such as \"10s\"\n" +
		"hopc.toml:4: transport.handshakeTimeout: -1s is not allowed; use a positive duration such as \"10s\""},
	{name: "reconnect", toml: tokenLine + "[reconnect]\nminDelay = \"2s\"\nmaxDelay = \"1s\"\nstableAfter = \"0s\"\n", want: "hopc.toml:4: reconnect.maxDelay: 1s is shorter than reconnect.minDelay (2s); raise maxDelay or lower minDelay\n" +
		"hopc.toml:5: reconnect.stableAfter: 0s is not allowed; use a positive duration such as \"10s\" (uptime after which the backoff resets)"},
	{name: "reconnect zero min", toml: tokenLine + "[reconnect]\nminDelay = \"0s\"\n", want: "hopc.toml:3: reconnect.minDelay: 0s is not allowed; use a positive duration such as \"10s\""},
	{name: "env in proxy", toml: tokenLine + "[[proxies]]\nname = \"${HOP_TEST_NAME}\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\nlocalIP = \"${HOP_TEST_UNSET}\"\nlocalPort = 22\nremotePort = 6001\n", env: map[string]string{"HOP_TEST_NAME": "ssh"}, want: "hopc.toml:10: proxies[1].localIP: environment variable HOP_TEST_UNSET is not set (referenced as ${HOP_TEST_UNSET}); export it or write the value directly"},
	{name: "missing token", toml: "serverAddr = \"example.com\"\n", want: "hopc.toml: auth.token: missing or empty; set the secret shared by server and clients, e.g. auth.token = \"${HOP_TOKEN}\" with HOP_TOKEN exported"},
	{name: "many problems", toml: "serverPort = 70000\ntoken = \"x\"\n\n[heartbeat]\ninterval = 10\n\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\nidleTimeout = \"30s\"\n\n[[proxies]]\nname = \"ssh\"\ntype = \"tpc\"\nlocalPort = 22\nremotPort = 6001\n", want: "hopc.toml:1: serverPort: 70000 is out of range; use 1-65535\n" +
		"hopc.toml:2: token: unknown key; did you mean auth.token?\n" +
		"hopc.toml:5: heartbeat.interval: 10 is a bare number; durations are strings with a unit: write \"10s\" (units: ms, s, m, h)\n" +
		"hopc.toml:12: proxies[0].idleTimeout: only udp, sudp and xudp proxies have an idle timeout; remove it from this tcp proxy\n" +
		"hopc.toml:15: proxies[1].name: \"ssh\" is already the name of proxies[0] (line 7); proxy names must be unique\n" +
		"hopc.toml:16: proxies[1].type: \"tpc\" is not a proxy type; use one of: tcp, udp, stcp, sudp, xtcp, xudp\n" +
		"hopc.toml:18: proxies[1].remotPort: unknown key; did you mean remotePort?"},
}
