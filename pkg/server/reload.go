package server

import (
	"log/slog"
	"reflect"
	"strings"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/logging"
)

// Reloadable are the config keys Reload applies while hops runs. They
// apply to what comes next: allowPorts and maxProxiesPerClient to proxies
// registered from now on, the tokens to logins from now on. Proxies and
// sessions that exist stay as they are.
var Reloadable = []string{"allowPorts", "maxProxiesPerClient", "auth.token", "auth.users", "log.level"}

// SetLogLevelVar gives the server the level of its logger, so that Reload
// can change it. Without one, a change of log.level needs a restart. Call
// it before Serve.
func (s *Server) SetLogLevelVar(v *slog.LevelVar) { s.level = v }

// Reload compares newCfg with the running config and applies the keys of
// Reloadable that changed (log.level only with SetLogLevelVar). Every
// other key that changed is returned in needsRestart and keeps its
// running value. Both lists name keys as the TOML file does ("bindPort",
// "limits.maxHandshakes"); both are logged, applied in one info line, each
// of needsRestart as a warning. An invalid newCfg is refused with the
// error of its Validate (it matches config.ErrInvalid), and nothing
// changes. Reload is safe to call while the server runs.
func (s *Server) Reload(newCfg *config.ServerConfig) (applied, needsRestart []string, err error) {
	if err := newCfg.Validate(); err != nil {
		return nil, nil, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.live.Load()
	next := *old
	for _, key := range changedKeys(old, newCfg) {
		switch key {
		case "allowPorts":
			next.AllowPorts = newCfg.AllowPorts
		case "maxProxiesPerClient":
			next.MaxProxiesPerClient = newCfg.MaxProxiesPerClient
		case "auth.token":
			next.Auth.Token = newCfg.Auth.Token
		case "auth.users":
			next.Auth.Users = newCfg.Auth.Users
		case "log.level":
			lv, err := logging.ParseLevel(newCfg.Log.Level)
			if s.level == nil || err != nil { // err: Validate let through a level logging does not know
				needsRestart = append(needsRestart, key)
				continue
			}
			s.level.Set(lv)
			next.Log.Level = newCfg.Log.Level
		default:
			needsRestart = append(needsRestart, key)
			continue
		}
		applied = append(applied, key)
	}
	s.live.Store(&next)
	if len(applied) == 0 {
		s.log.Info("config reloaded: nothing to apply", "needs_restart", len(needsRestart))
	} else {
		s.log.Info("config reloaded", "applied", strings.Join(applied, ", "))
	}
	for _, key := range needsRestart {
		s.log.Warn(key+" changed: needs a restart", "key", key)
	}
	return applied, needsRestart, nil
}

// policy is the running value of the Reloadable keys: read them here,
// not from s.cfg, which keeps the values hops started with.
func (s *Server) policy() *config.ServerConfig { return s.live.Load() }

// tokenFor is the login policy's token lookup (auth.TokenFor of the
// running config).
func (s *Server) tokenFor(user string) (string, bool) { return s.policy().Auth.TokenFor(user) }

// changedKeys lists the keys whose values differ between a and b, in the
// order of the struct fields, by their TOML names. A table is descended
// into; an array (allowPorts, auth.users) or a value type without TOML
// fields of its own (a Duration) is one key.
func changedKeys(a, b *config.ServerConfig) []string {
	var keys []string
	var walk func(prefix string, va, vb reflect.Value)
	walk = func(prefix string, va, vb reflect.Value) {
		t := va.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key := prefix + name
			fa, fb := va.Field(i), vb.Field(i)
			if f.Type.Kind() == reflect.Struct && hasTOMLFields(f.Type) {
				walk(key+".", fa, fb)
				continue
			}
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				keys = append(keys, key)
			}
		}
	}
	walk("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
	return keys
}

func hasTOMLFields(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") != "" {
			return true
		}
	}
	return false
}
