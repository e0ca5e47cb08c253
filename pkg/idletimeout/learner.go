package idletimeout

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Result is what is known now.
type Result struct {
	// Interval is the interval to use now: Start until something
	// survived, then clamp(Survived×Fraction, Min, Max). When a failure is
	// confirmed and nothing survived yet, the path forgets flows sooner
	// than Start was meant for, and Interval is Min.
	Interval time.Duration
	// Survived is the longest silence that survived (0: none yet).
	Survived time.Duration
	// Failed is the shortest silence confirmed too long (0: none, e.g.
	// no short timeout up to the cap).
	Failed time.Duration
	// Converged: Failed/max(Survived, Min/Fraction) <= 1+Precision, or
	// Survived reached the cap Max/Fraction (no need to probe longer).
	Converged bool
	// Probes is the number of probes reported in this learning round.
	Probes int
}

// Estimate is the idle time after which the path forgets a flow, as far
// as it is known: the geometric middle of Survived and Failed, or 0 while
// either is unknown (nothing survived, or no failure up to the cap).
func (r Result) Estimate() time.Duration {
	if r.Survived <= 0 || r.Failed <= 0 {
		return 0
	}
	return time.Duration(math.Sqrt(float64(r.Survived) * float64(r.Failed))).Round(time.Millisecond)
}

// String says what is known, for a log line: "path forgets idle flows
// after ~38.8s (35.552s kept, 42.279s forgotten); using 15.998s".
func (r Result) String() string {
	var s string
	switch {
	case r.Estimate() > 0:
		s = fmt.Sprintf("path forgets idle flows after ~%v (%v kept, %v forgotten)", r.Estimate().Round(100*time.Millisecond), r.Survived, r.Failed)
	case r.Survived > 0:
		s = fmt.Sprintf("path keeps idle flows at least %v", r.Survived)
	case r.Failed > 0:
		s = fmt.Sprintf("path forgets idle flows in less than %v", r.Failed)
	default:
		s = "nothing learnt yet"
	}
	if !r.Converged {
		s += ", still learning"
	}
	return fmt.Sprintf("%s; using %v", s, r.Interval)
}

// Learner is the pure search state: no goroutines, no clock. The caller
// starts the probes Next asks for, reports each outcome with Report, and
// reads Result. It is not safe for concurrent use.
type Learner struct {
	cfg    Config
	floor  time.Duration   // Min/Fraction: shorter silences would pick an interval below Min anyway
	cap    time.Duration   // Max/Fraction: longer silences would pick an interval above Max anyway
	ladder []time.Duration // the exponential phase's silences, ascending, last = cap

	survived time.Duration
	fails    []time.Duration // failed silences longer than survived, ascending (repeats kept)
	losses   int             // failures later contradicted by a longer survival
	probes   int
}

// NewLearner returns a Learner for cfg with its defaults filled in. cfg
// must pass Validate; an invalid cfg is replaced field by field by the
// defaults of the fields it got wrong, so the Learner still works.
func NewLearner(cfg Config) *Learner {
	cfg = sane(cfg)
	l := &Learner{
		cfg:   cfg,
		floor: scale(cfg.Min, 1/cfg.Fraction),
		cap:   scale(cfg.Max, 1/cfg.Fraction),
	}
	for p := scale(cfg.Start, 1/cfg.Fraction); p < l.cap; p *= 2 {
		l.ladder = append(l.ladder, p)
	}
	l.ladder = append(l.ladder, l.cap)
	return l
}

// sane fills in defaults and replaces what Validate would refuse, so that
// a Learner never divides by zero or loops forever on a config its caller
// forgot to validate.
func sane(c Config) Config {
	c = c.WithDefaults()
	d := Config{}.WithDefaults()
	if c.Min <= 0 {
		c.Min = d.Min
	}
	if c.Max <= 0 {
		c.Max = d.Max
	}
	if c.Min > c.Max {
		c.Min, c.Max = d.Min, d.Max
	}
	if !(c.Fraction > 0 && c.Fraction < 1) || float64(c.Max)/c.Fraction > float64(MaxCap) {
		c.Fraction = d.Fraction
		if float64(c.Max)/c.Fraction > float64(MaxCap) {
			c.Min, c.Max = d.Min, d.Max
		}
	}
	if c.Start < c.Min || c.Start > c.Max {
		c.Start = min(max(DefaultStart, c.Min), c.Max)
	}
	if c.Parallel < 1 || c.Parallel > MaxParallel {
		c.Parallel = d.Parallel
	}
	if !(c.Precision >= MinPrecision && c.Precision <= 1e6) {
		c.Precision = d.Precision
	}
	if c.Relearn <= 0 {
		c.Relearn = d.Relearn
	}
	if c.Verify <= 0 {
		c.Verify = d.Verify
	}
	if c.Confirm < 1 || c.Confirm > MaxConfirm {
		c.Confirm = d.Confirm
	}
	return c
}

// scale returns d×f rounded to the millisecond (to the nanosecond below
// 1 s, so that tiny test configs keep distinct points).
func scale(d time.Duration, f float64) time.Duration {
	v := time.Duration(float64(d) * f)
	if v >= time.Second {
		v = v.Round(time.Millisecond)
	}
	return v
}

// Config returns the Learner's config, defaults filled in.
func (l *Learner) Config() Config { return l.cfg }

// failed is the shortest confirmed failure: the Confirm-th shortest failed
// silence longer than survived (a failure of a shorter silence implies
// this one is too long as well), or 0.
func (l *Learner) failed() time.Duration {
	if n := l.confirm(); len(l.fails) >= n {
		return l.fails[n-1]
	}
	return 0
}

// confirm is the number of failures needed: Confirm, plus one for each
// survival in this round that contradicted failures (the probes are
// lossy), up to MaxConfirm.
func (l *Learner) confirm() int {
	return min(l.cfg.Confirm+l.losses, max(MaxConfirm, l.cfg.Confirm))
}

func (l *Learner) converged() bool {
	if l.survived >= l.cap {
		return true
	}
	f := l.failed()
	if f == 0 {
		return false
	}
	lo := max(l.survived, l.floor)
	return float64(f) <= float64(lo)*(1+l.cfg.Precision)
}

// Result returns what is known now.
func (l *Learner) Result() Result {
	r := Result{
		Survived:  l.survived,
		Failed:    l.failed(),
		Converged: l.converged(),
		Probes:    l.probes,
	}
	switch {
	case r.Survived > 0:
		r.Interval = min(max(scale(r.Survived, l.cfg.Fraction), l.cfg.Min), l.cfg.Max)
	case r.Failed > 0:
		r.Interval = l.cfg.Min
	default:
		r.Interval = l.cfg.Start
	}
	return r
}

// Report records the outcome of a probe of silence. A survival is
// definitive (the packet arrived) and discards every failure of a
// silence up to it; a failure of a silence no longer than one that
// survived is inconsistent (a lost probe) and ignored.
func (l *Learner) Report(silence time.Duration, survived bool) {
	l.probes++
	if silence <= 0 || silence <= l.survived {
		return
	}
	if survived {
		wrong := l.failed() != 0 && silence >= l.failed()
		l.survived = silence
		i, _ := slices.BinarySearch(l.fails, silence+1)
		if i > 0 {
			l.losses++
		}
		l.fails = slices.Delete(l.fails, 0, i)
		if wrong {
			// A confirmed failure was wrong: the probes were lost or the
			// path changed; either way the failures above are suspect.
			l.fails = nil
		}
		return
	}
	i, _ := slices.BinarySearch(l.fails, silence)
	l.fails = slices.Insert(l.fails, i, silence)
}

// Reset starts over: it keeps nothing learnt.
func (l *Learner) Reset() {
	l.survived, l.fails, l.losses, l.probes = 0, nil, 0, 0
}

// Next returns the silences to probe now, given the ones in flight: at
// most Parallel-len(inFlight), none once converged. Silences in flight
// are not returned again.
//
// While nothing failed it walks the ladder Start/Fraction×2^k up to the
// cap, shortest first, at most Parallel-1 doublings beyond the longest
// silence that survived. Once something failed it probes below hi, the
// shortest confirmed failure (or, while none is confirmed, the shortest
// failure): first it re-probes the failures not yet confirmed, then it
// spreads probes geometrically over the widest gaps between
// lo = max(Survived, Min/Fraction), the silences in flight and hi, until
// every gap is within Precision. Probes in flight beyond hi keep their
// slots: a survival there shows the failures were losses.
func (l *Learner) Next(inFlight []time.Duration) []time.Duration {
	free := l.cfg.Parallel - len(inFlight)
	if free <= 0 || l.converged() {
		return nil
	}
	busy := make(map[time.Duration]bool, len(inFlight))
	for _, d := range inFlight {
		busy[d] = true
	}
	var out []time.Duration
	hi := l.failed()
	tentative := hi == 0 && len(l.fails) > 0
	if tentative {
		hi = l.fails[0]
	}
	if hi == 0 {
		// Look ahead at most Parallel-1 doublings (at least one) beyond
		// what survived: longer probes would hold their slots long after
		// the answer is known. Those in flight beyond a failure still
		// help: their survival unmasks a lost probe.
		limit := scale(max(l.survived, l.ladder[0]), math.Exp2(float64(max(l.cfg.Parallel-1, 1))))
		for _, p := range l.ladder {
			if p > limit {
				break
			}
			if p > l.survived && !busy[p] {
				out = append(out, p)
				if len(out) == free {
					break
				}
			}
		}
		return out
	}

	// Bisect between lo and hi. hi is the shortest confirmed failure or,
	// while none is, the shortest failure (tentative: it is re-probed
	// first, and the points below it are wasted only if it was a loss).
	lo := max(l.survived, l.floor)
	for _, f := range l.fails {
		if f > hi || (f == hi && !tentative) || len(out) == free {
			break
		}
		if f > lo && !busy[f] && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == free {
		return out
	}

	// Known points: the bounds, the probes in flight and those just
	// chosen. Allocate the remaining probes to the gaps between them, each
	// time to the gap whose sub-gaps are widest, while that is wider than
	// Precision.
	pts := []time.Duration{lo, hi}
	for _, d := range append(slices.Clone(inFlight), out...) {
		if d > lo && d < hi {
			pts = append(pts, d)
		}
	}
	slices.Sort(pts)
	pts = slices.Compact(pts)
	type gap struct {
		a, b time.Duration
		log  float64
		n    int
	}
	gaps := make([]gap, 0, len(pts)-1)
	for i := 1; i < len(pts); i++ {
		gaps = append(gaps, gap{a: pts[i-1], b: pts[i], log: math.Log(float64(pts[i]) / float64(pts[i-1]))})
	}
	want := math.Log(1 + l.cfg.Precision)
	for range free - len(out) {
		// The widest, or a lower one nearly as wide: shorter probes
		// answer sooner, and the lowest failure is the likeliest true.
		best, bestW := -1, want
		for i, g := range gaps {
			if w := g.log / float64(g.n+1); w > want && (best < 0 || w > bestW*1.05) {
				best, bestW = i, w
			}
		}
		if best < 0 {
			break
		}
		gaps[best].n++
	}
	for _, g := range gaps {
		for k := 1; k <= g.n; k++ {
			d := scale(g.a, math.Exp(g.log*float64(k)/float64(g.n+1)))
			if d > g.a && d < g.b && !busy[d] && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}
