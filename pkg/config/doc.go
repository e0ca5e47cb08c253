// Package config loads and validates the TOML configuration of hops (the
// server) and hopc (the client).
//
// Each side has a validated struct ([ServerConfig], [ClientConfig]), a
// constructor for its defaults ([DefaultServer], [DefaultClient]) and a
// Validate method for configs built in code. [LoadServer] and [LoadClient]
// read a file; [ParseServer] and [ParseClient] decode bytes.
//
// Decoding is strict. Keys follow frp v1 (camelCase). Unknown keys, values
// of the wrong type and bad values are all reported in one [*Error] that
// lists every [Problem] with its file, line and key path, e.g.
//
//	hopc.toml:12: proxies[1].remotePort: 70000 is out of range; use 0-65535 (0 lets the server choose)
//
// Every such error matches [ErrInvalid] with errors.Is.
//
// A key that is absent takes its default; a key written explicitly keeps its
// value, including zero ("0s" disables heartbeats, for example). Durations
// are strings with a unit ("10s", "500ms", "1m30s"); a bare number is an
// error. "${NAME}" in any string value is replaced by the environment
// variable NAME after decoding; "$${" writes a literal "${". An unset
// variable is an error; a variable set to the empty string is not.
//
// Relative file paths (certFile, keyFile, trustedCaFile, log.to) are used as
// written, that is relative to the working directory of the process.
//
// conf/ holds commented examples: hops.toml and hopc.toml are a minimal
// working pair, hops_full.toml and hopc_full.toml list every key with its
// default.
package config
