// Package idletimeout learns how long a network path keeps an idle flow
// (a NAT's or firewall's idle timeout) from probes, and picks a keepalive
// interval from it.
//
// A probe holds a flow silent for a chosen time and then sends a packet
// toward the prober; if the packet arrives, the path kept the flow that
// long. The search starts with an exponential phase (silences doubling from
// Start/Fraction, Parallel probes at once) until a silence is confirmed too
// long or the cap Max/Fraction survives, then bisects geometrically between
// the longest silence that survived and the shortest one confirmed too long
// until they are within Precision. The interval picked is the longest
// silence that survived times Fraction, within [Min, Max]; until something
// survived it is Start, which is safe behind a 5 s NAT.
//
// A lost probe must not be mistaken for a short timeout: a silence counts as
// too long only after Confirm failed probes of it or of shorter silences, a
// failure at a silence shorter than one that survived is ignored, and once
// a survival has shown that probes get lost, more failures are needed.
// Probes that could not be run at all (the Prober's error) count for
// nothing.
//
// Learner is the pure search state (no goroutines, no clock). Runner drives
// a Learner with a Prober: it runs the probes in parallel, reports changes,
// re-verifies what it learnt now and then, and re-learns after Relearn or
// when told to.
package idletimeout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Prober runs one probe: a flow held silent for silence, then a packet
// sent toward the prober; survived reports whether it arrived. err != nil
// means the probe could not be run (dial failed, server gone): it says
// nothing about the path and is retried later, never counted as a loss.
// A Prober must return soon after ctx ends.
type Prober func(ctx context.Context, silence time.Duration) (survived bool, err error)

// Defaults used by Config.WithDefaults for zero fields.
const (
	DefaultMin       = time.Second
	DefaultMax       = 5 * time.Minute
	DefaultStart     = 2 * time.Second
	DefaultFraction  = 0.45
	DefaultParallel  = 4
	DefaultPrecision = 0.25
	DefaultRelearn   = 6 * time.Hour
	DefaultVerify    = 15 * time.Minute
	DefaultConfirm   = 2
)

// Limits of the values Validate accepts.
const (
	// MaxCap is the longest silence the search may probe (Max/Fraction).
	MaxCap = 24 * time.Hour
	// MaxParallel is the most probes a Config may keep in flight at once.
	MaxParallel = 64
	// MaxConfirm is the most failures a Config may ask for before a
	// silence counts as too long.
	MaxConfirm = 16
	// MinPrecision is the finest Precision accepted.
	MinPrecision = 0.01
)

// ErrInvalidConfig matches every error returned by Config.Validate.
var ErrInvalidConfig = errors.New("idletimeout: invalid config")

// Config tunes the search. A zero field takes its default (see
// WithDefaults); a negative one is an error.
type Config struct {
	// Min and Max bound the interval picked. Defaults 1s and 5m.
	Min, Max time.Duration
	// Start is the interval used until something is learnt. Default 2s
	// (safe behind a 5 s NAT), raised to Min or lowered to Max when the
	// default falls outside them; an explicit Start must lie within
	// [Min, Max].
	Start time.Duration
	// Fraction: interval = longest silence that survived × Fraction.
	// Default 0.45; must be in (0, 1).
	Fraction float64
	// Parallel is the number of probes in flight at once. Default 4.
	Parallel int
	// Precision: the search stops when hi/lo <= 1+Precision. Default 0.25.
	Precision float64
	// Relearn: the Runner starts over this long after a learning round
	// began. Default 6h.
	Relearn time.Duration
	// Verify: while converged, the Runner re-probes this often,
	// alternately, the longest silence that survived (starting over once
	// Confirm probes of it in a row failed: the path got shorter) and the
	// shortest confirmed too long (a survival resumes the search). Default
	// 15m. This field is not in issue 12's sketch of the API.
	Verify time.Duration
	// Confirm: a silence counts as too long only after this many failed
	// probes of it (or of a shorter one) with no longer one surviving.
	// Default 2 (a lossy probe is not a short timeout). Each survival
	// that contradicts failures of shorter silences in a learning round
	// (proof that probes get lost) raises the count by one for the rest
	// of the round, up to MaxConfirm; one that contradicts a confirmed
	// failure also forgets every failure seen.
	Confirm int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Min == 0 {
		c.Min = DefaultMin
	}
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.Start == 0 {
		c.Start = min(max(DefaultStart, c.Min), c.Max)
	}
	if c.Fraction == 0 {
		c.Fraction = DefaultFraction
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultParallel
	}
	if c.Precision == 0 {
		c.Precision = DefaultPrecision
	}
	if c.Relearn == 0 {
		c.Relearn = DefaultRelearn
	}
	if c.Verify == 0 {
		c.Verify = DefaultVerify
	}
	if c.Confirm == 0 {
		c.Confirm = DefaultConfirm
	}
	return c
}

// Validate checks c with its defaults filled in. Every error wraps
// ErrInvalidConfig and names the field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...)
	}
	switch {
	case c.Min < 0:
		return bad("Min %v is negative; use a positive duration such as 1s", c.Min)
	case c.Max < 0:
		return bad("Max %v is negative; use a positive duration such as 5m", c.Max)
	case c.Min > c.Max:
		return bad("Min %v is longer than Max %v; lower Min or raise Max", c.Min, c.Max)
	case c.Start < c.Min || c.Start > c.Max:
		return bad("Start %v is outside [Min %v, Max %v]; pick a Start within the bounds", c.Start, c.Min, c.Max)
	case !(c.Fraction > 0 && c.Fraction < 1): // also refuses NaN
		return bad("Fraction %v must be between 0 and 1 (exclusive), e.g. 0.45", c.Fraction)
	case float64(c.Max)/c.Fraction > float64(MaxCap):
		return bad("Max/Fraction = %v/%v would probe silences longer than %v; lower Max or raise Fraction", c.Max, c.Fraction, MaxCap)
	case c.Parallel < 1 || c.Parallel > MaxParallel:
		return bad("Parallel %d must be between 1 and %d", c.Parallel, MaxParallel)
	case !(c.Precision >= MinPrecision): // also refuses NaN
		return bad("Precision %v must be at least %v (0.25 stops when the bounds are within 25%%)", c.Precision, MinPrecision)
	case c.Precision > 1e6:
		return bad("Precision %v is too large; use e.g. 0.25", c.Precision)
	case c.Relearn < 0:
		return bad("Relearn %v is negative; use a positive duration such as 6h", c.Relearn)
	case c.Verify < 0:
		return bad("Verify %v is negative; use a positive duration such as 15m", c.Verify)
	case c.Confirm < 1 || c.Confirm > MaxConfirm:
		return bad("Confirm %d must be between 1 and %d", c.Confirm, MaxConfirm)
	}
	return nil
}
