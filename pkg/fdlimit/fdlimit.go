// Package fdlimit raises and reports the file descriptor limit
// (RLIMIT_NOFILE) of hops and hopc. Every accepted or dialled connection
// costs a descriptor, so a low soft limit is the first thing a flood of
// connections runs into; the accept loops (package acceptloop) report it.
package fdlimit

import "log/slog"

// Limit is a process's RLIMIT_NOFILE.
type Limit struct {
	Soft, Hard uint64
}

// Raise sets the soft limit to the hard one and returns the limit then in
// force. Go already does this at start on Linux; Raise makes it explicit
// and portable, and its result is what the caller logs.
func Raise() (Limit, error) { return raise() }

// Get returns the limit in force.
func Get() (Limit, error) { return get() }

// lowSoft is the soft limit under which RaiseAndLog warns: a proxy with a
// few hundred connections needs more.
const lowSoft = 1024

// RaiseAndLog raises the soft limit to the hard one and logs the limit in
// force: one line, a warning when it is low or cannot be read.
func RaiseAndLog(log *slog.Logger) Limit {
	l, err := Raise()
	switch {
	case err != nil:
		log.Warn("file descriptor limit", "soft", l.Soft, "hard", l.Hard, "error", err)
	case l.Soft < lowSoft:
		log.Warn("file descriptor limit", "soft", l.Soft, "hard", l.Hard,
			"hint", "every connection needs a descriptor; raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit)")
	default:
		log.Info("file descriptor limit", "soft", l.Soft, "hard", l.Hard)
	}
	return l
}
