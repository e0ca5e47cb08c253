package config

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LogConfig is the TOML table "log".
type LogConfig struct {
	// Level is one of "debug", "info", "warn", "error". Default "info".
	Level string `toml:"level"`
	// To is "stderr", "stdout", "console" (frp's name for standard
	// output) or the path of a file, appended to, in a directory that
	// exists and is writable. Default "stderr".
	To string `toml:"to"`
	// MaxDays > 0 rotates the file To daily, at the first line after
	// local midnight, to TO.YYYY-MM-DD, and deletes the rotated files of
	// days more than MaxDays before today (frp's log.maxDays). 0, the
	// default, never rotates. Only for a file.
	MaxDays int `toml:"maxDays"`
}

// LogStreams are the values of LogConfig.To that name a standard stream
// rather than a file.
var LogStreams = []string{"stderr", "stdout", "console"}

// LogLevels lists the valid values of LogConfig.Level, most verbose first.
var LogLevels = []string{"debug", "info", "warn", "error"}

// HeartbeatConfig is the [heartbeat] table: application-level pings on the
// control connection.
type HeartbeatConfig struct {
	// Interval between heartbeats; 0 sends none. Default 10s. hopc also
	// takes "auto": it learns how long the path to hops keeps an idle TCP
	// flow (package idletimeout, probes on side connections) and picks
	// the interval from that, within MinInterval and MaxInterval.
	Interval Duration `toml:"interval"`
	// Timeout after which a silent peer is considered dead; 0 never checks.
	// Default 30s. With "auto" it is at least 3× the interval in use.
	Timeout Duration `toml:"timeout"`
	// MinInterval and MaxInterval bound the interval "auto" picks
	// (hopc; defaults 1s and 60s). On hops, MaxInterval is the longest
	// interval it lets an auto client use (default 60s); MinInterval is
	// hopc's only.
	MinInterval Duration `toml:"minInterval,omitzero"`
	MaxInterval Duration `toml:"maxInterval,omitzero"`
}

// Defaults of the heartbeat's "auto" bounds.
const (
	DefaultHeartbeatMinInterval = time.Second
	DefaultHeartbeatMaxInterval = time.Minute
)

// MuxConfig is the [mux] table: the yamux session over the control
// connection.
type MuxConfig struct {
	// KeepaliveInterval between yamux pings; 0 disables them. Default 15s.
	KeepaliveInterval Duration `toml:"keepaliveInterval"`
	// KeepaliveTimeout bounds a yamux ping and every write on the session
	// (yamux ConnectionWriteTimeout). Must be > 0. Default 10s.
	KeepaliveTimeout Duration `toml:"keepaliveTimeout"`
	// MaxStreamWindow is the per-stream receive window in bytes,
	// MinStreamWindow..MaxStreamWindowLimit. Default DefaultStreamWindow
	// (2 MiB): a larger window keeps a bulk stream moving between window
	// updates; memory is only used by data the reader has not taken yet.
	MaxStreamWindow int `toml:"maxStreamWindow"`
	// StreamCloseTimeout is how long a stream waits for the peer to close
	// its side once this side has closed or half-closed it, before it is
	// reset, so that a peer that never answers cannot keep it. It also
	// bounds how long the answer to a half-closed request may take. Must be
	// > 0. Default 60s.
	StreamCloseTimeout Duration `toml:"streamCloseTimeout"`
}

// Limits of MuxConfig.MaxStreamWindow, in bytes.
const (
	MinStreamWindow      = 256 * 1024       // yamux's initial window
	DefaultStreamWindow  = 2 * 1024 * 1024  // default of MuxConfig.MaxStreamWindow
	MaxStreamWindowLimit = 16 * 1024 * 1024 // 16 MiB
)

// TCPKeepaliveConfig is the [transport.tcpKeepalive] table: kernel TCP
// keepalive on the control connection.
type TCPKeepaliveConfig struct {
	// Idle time before the first probe; 0 disables TCP keepalive. Default 15s.
	Idle Duration `toml:"idle"`
	// Interval between probes. Default 5s.
	Interval Duration `toml:"interval"`
	// Count of unanswered probes before the connection is dropped, 1..100.
	// Default 3.
	Count int `toml:"count"`
}

// AuthConfig is the [auth] table.
type AuthConfig struct {
	// Token is the secret shared by the server and the clients that are
	// not listed in Users. hopc: required. hops: may be empty only when
	// Users is not, and then only listed users can log in. See TokenFor.
	Token string `toml:"token"`
	// Users (hops only) are the [[auth.users]] entries: users with a token
	// of their own. Must be empty in hopc, which names its user in the
	// top-level user key.
	Users []AuthUser `toml:"users,omitempty"`
}

// AuthUser is one [[auth.users]] entry of hops.
type AuthUser struct {
	// Name is the user, as hopc writes it in its user key:
	// [A-Za-z0-9._-]{1,64}, unique among the entries.
	Name string `toml:"name"`
	// Token is the secret of this user. Required.
	Token string `toml:"token"`
}

// TokenFor returns the token that user must prove at login: the own token
// of a user listed in Users; for any other user (including "") the shared
// Token, or ok false when Token is empty (then only listed users may log
// in).
func (a AuthConfig) TokenFor(user string) (token string, ok bool) {
	for _, u := range a.Users {
		if u.Name == user {
			return u.Token, true
		}
	}
	return a.Token, a.Token != ""
}

// PlaceholderToken is the auth.token of older example files. It is
// refused: a server reachable from the internet with a token every reader
// of the examples knows is open to anyone.
const PlaceholderToken = "change-me"

// MinTokenLen is the least number of bytes of a token that does not draw a
// warning.
const MinTokenLen = 16

func defaultLog() LogConfig { return LogConfig{Level: "info", To: "stderr"} }

func defaultHeartbeat() HeartbeatConfig {
	return HeartbeatConfig{Interval: Dur(10 * time.Second), Timeout: Dur(30 * time.Second),
		MinInterval: Dur(DefaultHeartbeatMinInterval), MaxInterval: Dur(DefaultHeartbeatMaxInterval)}
}

func defaultMux() MuxConfig {
	return MuxConfig{KeepaliveInterval: Dur(15 * time.Second), KeepaliveTimeout: Dur(10 * time.Second), MaxStreamWindow: DefaultStreamWindow, StreamCloseTimeout: Dur(60 * time.Second)}
}

func defaultTCPKeepalive() TCPKeepaliveConfig {
	return TCPKeepaliveConfig{Idle: Dur(15 * time.Second), Interval: Dur(5 * time.Second), Count: 3}
}

func (l LogConfig) validate(r *reporter, key string) {
	if !slices.Contains(LogLevels, l.Level) {
		r.add(key+".level", "%q is not a log level; use one of: %s", l.Level, strings.Join(LogLevels, ", "))
	}
	switch {
	case l.To == "":
		r.add(key+".to", `empty; use "stderr", "stdout" or a file path`)
	case !slices.Contains(LogStreams, l.To):
		checkLogFile(r, key+".to", l.To)
	}
	switch {
	case l.MaxDays < 0:
		r.add(key+".maxDays", "%d is negative; set the days of rotated log files to keep, 1 or more, or 0 to never rotate", l.MaxDays)
	case l.MaxDays > 0 && slices.Contains(LogStreams, l.To):
		r.add(key+".maxDays", "set, but log.to is %q: only a log file is rotated (a stream is rotated by whatever reads it, e.g. journald); set log.to to a file path, or remove log.maxDays", l.To)
	}
}

// checkLogFile reports a log file that could not be opened for appending
// at start: its directory is missing or not writable, or the file is a
// directory or not writable. It creates nothing.
func checkLogFile(r *reporter, key, path string) {
	const how = `create it, or set log.to to "stderr", "stdout" or a file in a directory that exists`
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			r.add(key, "%s is a directory; write the path of a file in it, e.g. %q", path, filepath.Join(path, "hop.log"))
		case fi.Mode().IsRegular() && !writable(path):
			r.add(key, "file %s is not writable by this user; fix its permissions or choose another file", path)
		}
		return
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.add(key, "directory %s does not exist; %s", dir, how)
	case err != nil:
		r.add(key, "directory %s cannot be read: %v; %s", dir, unwrapPathError(err), how)
	case !fi.IsDir():
		r.add(key, "%s is not a directory; %s", dir, how)
	case !writable(dir):
		r.add(key, "directory %s is not writable by this user, so %s cannot be created there; fix its permissions or choose another directory", dir, filepath.Base(path))
	}
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (h HeartbeatConfig) validate(r *reporter, key string, server bool) {
	iv, to := key+".interval", key+".timeout"
	nonNegative(r, iv, h.Interval, `"0s" sends no heartbeats`)
	nonNegative(r, to, h.Timeout, `"0s" never times out`)
	minK, maxK := key+".minInterval", key+".maxInterval"
	if server {
		positive(r, maxK, h.MaxInterval, "the longest heartbeat interval an auto client may use")
		if h.Interval.Auto {
			r.add(iv, `"auto" is hopc's: hops follows the interval each auto client learns (up to heartbeat.maxInterval); give hops a duration, e.g. "10s"`)
		}
	} else {
		positive(r, minK, h.MinInterval, "the shortest heartbeat interval \"auto\" may use")
		positive(r, maxK, h.MaxInterval, "the longest heartbeat interval \"auto\" may use")
		if r.ok(minK, maxK) && h.MinInterval.Duration > h.MaxInterval.Duration {
			r.add(minK, "%s is longer than %s (%s); set minInterval at most maxInterval", formatDuration(h.MinInterval.Duration), maxK, formatDuration(h.MaxInterval.Duration))
		}
	}
	if h.Interval.Auto {
		return
	}
	if r.ok(iv, to) && h.Interval.Duration > 0 && h.Timeout.Duration > 0 && h.Interval.Duration >= h.Timeout.Duration {
		r.add(iv, "%s is not shorter than %s (%s), so a healthy peer would time out between two heartbeats; set %s to at least 3× the interval (%q) or shorten the interval",
			formatDuration(h.Interval.Duration), to, formatDuration(h.Timeout.Duration), to, formatDuration(3*h.Interval.Duration))
	}
}

func (m MuxConfig) validate(r *reporter, key string) {
	nonNegative(r, key+".keepaliveInterval", m.KeepaliveInterval, `"0s" disables mux keepalive`)
	positive(r, key+".keepaliveTimeout", m.KeepaliveTimeout, "it also bounds every write on the connection")
	if m.MaxStreamWindow < MinStreamWindow || m.MaxStreamWindow > MaxStreamWindowLimit {
		r.add(key+".maxStreamWindow", "%d is out of range; use %d-%d (bytes, 256 KiB to 16 MiB)", m.MaxStreamWindow, MinStreamWindow, MaxStreamWindowLimit)
	}
	positive(r, key+".streamCloseTimeout", m.StreamCloseTimeout, "how long a closed stream waits for the peer's close before it is reset")
}

func (k TCPKeepaliveConfig) validate(r *reporter, key string) {
	nonNegative(r, key+".idle", k.Idle, `"0s" disables TCP keepalive`)
	if k.Idle.Duration <= 0 {
		return
	}
	positive(r, key+".interval", k.Interval, `to disable TCP keepalive set idle = "0s"`)
	if k.Count < 1 || k.Count > 100 {
		r.add(key+".count", "%d is out of range; use 1-100 (unanswered probes before the connection is dropped)", k.Count)
	}
}

// checkToken checks one token (auth.token or auth.users[i].token) that is
// set: it refuses the placeholder of the examples and warns about a short
// one.
func checkToken(r *reporter, key, token string) {
	switch {
	case token == PlaceholderToken:
		r.add(key, "%q is the placeholder of the example files, which anyone can read; set a real secret, e.g. the output of: openssl rand -hex 24 (best kept out of the file: %s = \"${HOP_TOKEN}\" with HOP_TOKEN exported)", token, lastKey(key))
	case len(token) < MinTokenLen:
		r.warn(key, "only %d bytes; a short token is easier to guess: use at least %d, e.g. the output of: openssl rand -hex 24", len(token), MinTokenLen)
	}
}

// lastKey returns the last part of a key path: "token" for "auth.token".
func lastKey(key string) string {
	if i := strings.LastIndexAny(key, ".]"); i >= 0 {
		return key[i+1:]
	}
	return key
}

// atLeastOne checks a count that must be 1 or more; what says what it
// counts.
func atLeastOne(r *reporter, key string, v, def int, what string) {
	if v < 1 {
		r.add(key, "%d is not allowed; set 1 or more (default %d): %s", v, def, what)
	}
}

// nonNegative checks a duration that may be zero; zeroMeans says what zero
// does.
func nonNegative(r *reporter, key string, d Duration, zeroMeans string) {
	if d.Duration < 0 {
		r.add(key, `%s is negative; use "0s" or more (%s)`, formatDuration(d.Duration), zeroMeans)
	}
}

// positive checks a duration that must be > 0.
func positive(r *reporter, key string, d Duration, why string) {
	if d.Duration <= 0 {
		msg := "%s is not allowed; use a positive duration such as \"10s\""
		if why != "" {
			msg += " (" + why + ")"
		}
		r.add(key, msg, formatDuration(d.Duration))
	}
}

func portRange(r *reporter, key string, port, lo int, hint string) {
	if port < lo || port > 65535 {
		r.add(key, "%d is out of range; use %d-65535%s", port, lo, hint)
	}
}

// checkHost checks an address written without a port.
func checkHost(r *reporter, key, host, portKey string) {
	switch {
	case host == "":
		r.add(key, "empty; write a host name or IP address")
	case strings.Contains(host, ":") && net.ParseIP(host) == nil:
		r.add(key, "%q looks like host:port; write only the host here and the port in %s", host, portKey)
	}
}

// checkReadable reports a file that cannot be opened for reading. Only
// regular files are opened: opening a FIFO (such as a shell's <(...))
// would block or consume it, so for those existing is enough.
func checkReadable(r *reporter, key, path, what string) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
	case fi.IsDir():
		err = errors.New("is a directory")
	case fi.Mode().IsRegular():
		var f *os.File
		if f, err = os.Open(path); err == nil {
			f.Close()
		}
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		r.add(key, "cannot read %s %q: %v; check the path (relative paths start at the working directory)", what, path, err)
	}
}
