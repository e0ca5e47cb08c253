// Package config loads and validates the TOML configuration of hops (the
// server) and hopc (the client).
//
// Each side has a validated struct ([ServerConfig], [ClientConfig]), a
// constructor for its defaults ([DefaultServer], [DefaultClient]) and a
// Validate method for configs built in code. [LoadServer] and [LoadClient]
// read a file; [ParseServer] and [ParseClient] decode bytes.
//
// Decoding is strict. Keys follow frp v1 (camelCase) and match exactly,
// letter case included. Unknown keys, values of the wrong type and bad
// values are all reported in one [*Error] that lists every [Problem] with
// its file, line and key path, e.g.
//
//	hopc.toml:12: proxies[1].remotePort: 70000 is out of range; use 0-65535 (0 lets the server choose)
//	hopc.toml:3: SERVERPORT: unknown key; did you mean serverPort?
//	hopc.toml:7: transport.heartbeatTimeout: unknown key; hop calls this heartbeat.timeout, a duration string: write heartbeat.timeout = "90s"
//
// Every such error matches [ErrInvalid] with errors.Is. An unknown key
// that is one of frp's gets hop's name for it and its value in hop's form,
// or what hop does instead. Remarks that do not make a config invalid (a
// token shorter than [MinTokenLen]) are returned by the Warnings methods.
//
// A key that is absent takes its default; a key written explicitly keeps its
// value, including zero ("0s" disables heartbeats, for example). Durations
// are strings with a unit ("10s", "500ms", "1m30s"); a bare number is an
// error. "${NAME}" in any string value is replaced by the environment
// variable NAME after decoding; "$${" writes a literal "${". An unset
// variable is an error; a variable set to the empty string is not. frp's
// "{{ .Envs.NAME }}" is an error that says to write "${NAME}".
//
// Users: hopc logs in as its user (ClientConfig.User, "" by default); hops
// checks the token of that user ([AuthConfig.TokenFor]): its own from
// [[auth.users]], else the shared auth.token. Proxy names are kept apart
// per user, allowUsers of a secret proxy lists users, and a visitor names
// the owner's user in serverUser.
//
// Servers: hopc attaches to the one hops of serverAddr and serverPort, or
// to every node listed in serverAddrs (host:port each; a file sets one
// form or the other). [ClientConfig.ServerEndpoints] returns either as
// host:port; pkg/nodeset turns names into the addresses to dial.
//
// Proxies and visitors: a [[proxies]] entry of type tcp or udp opens a
// public port on the server. The secret types (stcp, sudp, xtcp, xudp)
// have no public port; a [[visitors]] entry of another hopc, listening on
// a local port and knowing the proxy's secretKey, reaches them. stcp and
// sudp are relayed through hops; xtcp and xudp try a direct path first
// (see [VisitorConfig] for its timeouts) and use the relay while there is
// none. Keys that do not apply to an entry's type are errors, as are
// secret types with a public remotePort. The server's [p2p] table
// ([P2PConfig]) sets the STUN ports that xtcp and xudp rely on.
//
// Relative file paths (certFile, keyFile, trustedCaFile, log.to) are used as
// written, that is relative to the working directory of the process. Files
// are checked when the config is loaded: the TLS files must be readable,
// and log.to must be in a directory that exists and is writable.
//
// conf/ holds commented examples: hops.toml and hopc.toml are a minimal
// working pair, hops_full.toml and hopc_full.toml list every key with its
// default, and hopc_xtcp_owner.toml and hopc_xtcp_visitor.toml are the two
// sides of secret proxies (xtcp, xudp, stcp) for the server of hops.toml.
package config
