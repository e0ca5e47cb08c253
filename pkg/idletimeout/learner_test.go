package idletimeout

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	defCap   = 666667 * time.Millisecond // DefaultMax / DefaultFraction
	defFloor = 2222 * time.Millisecond   // DefaultMin / DefaultFraction
)

// checkConverged asserts that r brackets the path's timeout T within
// Precision and picks Survived×Fraction within bounds.
func checkConverged(t *testing.T, cfg Config, r Result, T time.Duration) {
	t.Helper()
	cfg = cfg.WithDefaults()
	if !r.Converged {
		t.Fatalf("T=%v: not converged: %+v", T, r)
	}
	if r.Survived >= T || r.Failed < T {
		t.Fatalf("T=%v: result %+v does not bracket the timeout (want Survived < T <= Failed)", T, r)
	}
	if ratio := float64(r.Failed) / float64(r.Survived); ratio > 1+cfg.Precision {
		t.Fatalf("T=%v: Failed/Survived = %.3f, want <= %v: %+v", T, ratio, 1+cfg.Precision, r)
	}
	want := min(max(time.Duration(float64(r.Survived)*cfg.Fraction).Round(time.Millisecond), cfg.Min), cfg.Max)
	if r.Interval != want {
		t.Fatalf("T=%v: Interval %v, want %v (Survived %v × %v within [%v, %v])", T, r.Interval, want, r.Survived, cfg.Fraction, cfg.Min, cfg.Max)
	}
	if r.Interval >= T/2 {
		t.Fatalf("T=%v: Interval %v is not safely below the timeout", T, r.Interval)
	}
}

func TestLearnerConverges(t *testing.T) {
	for _, T := range []time.Duration{5 * time.Second, 40 * time.Second, 3 * time.Second, 17 * time.Second, 4*time.Minute + 10*time.Second} {
		l := NewLearner(Config{})
		at := simulate(l, path{timeout: T}, 10*time.Hour)
		r := l.Result()
		checkConverged(t, Config{}, r, T)
		t.Logf("T=%v: %+v after %v of probing", T, r, at)
		if at < 0 || at > 15*T+2*time.Minute {
			t.Fatalf("T=%v: converged after %v", T, at)
		}
	}
}

// Every timeout from below the floor to beyond the cap, log-spaced.
func TestLearnerConvergesEverywhere(t *testing.T) {
	for T := 500 * time.Millisecond; T < 3*time.Hour; T = T * 21 / 20 {
		for _, cfg := range []Config{{}, {Parallel: 1}, {Parallel: 7, Confirm: 3, Precision: 0.1}, {Min: 5 * time.Second, Max: time.Minute, Fraction: 0.3}} {
			l := NewLearner(cfg)
			at := simulate(l, path{timeout: T}, 24*time.Hour)
			r := l.Result()
			c := cfg.WithDefaults()
			floor := scale(c.Min, 1/c.Fraction)
			cap := scale(c.Max, 1/c.Fraction)
			switch {
			case !r.Converged:
				t.Fatalf("T=%v %+v: not converged: %+v", T, cfg, r)
			case at > 30*min(T, cap)+5*time.Minute:
				t.Fatalf("T=%v %+v: converged after %v", T, cfg, at)
			case r.Survived >= T || (r.Failed != 0 && r.Failed < T):
				t.Fatalf("T=%v %+v: %+v contradicts the path", T, cfg, r)
			case T > cap && (r.Survived != cap || r.Interval != c.Max):
				t.Fatalf("T=%v %+v: beyond the cap, got %+v", T, cfg, r)
			case T <= floor && r.Interval != c.Min:
				t.Fatalf("T=%v %+v: below the floor, got %+v", T, cfg, r)
			case T > floor*5/4 && T <= cap:
				checkConverged(t, cfg, r, T)
			}
		}
	}
}

func TestLearnerNoShortTimeout(t *testing.T) {
	l := NewLearner(Config{})
	simulate(l, path{timeout: 2 * time.Hour}, 10*time.Hour)
	r := l.Result()
	want := Result{Interval: DefaultMax, Survived: defCap, Failed: 0, Converged: true, Probes: r.Probes}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if r.Probes != 9 { // 4.444s ×2^k up to 9m28.8s, then the cap
		t.Fatalf("%d probes, want 9", r.Probes)
	}
}

func TestLearnerBounds(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		T    time.Duration
		want time.Duration // Interval
	}{
		// Min/Fraction = 22.2s: nothing that short survives, so Min.
		{"5s path under min 10s", Config{Min: 10 * time.Second, Max: 30 * time.Second}, 5 * time.Second, 10 * time.Second},
		// Max/Fraction = 66.7s survives: Max.
		{"2h path over max 30s", Config{Min: 10 * time.Second, Max: 30 * time.Second}, 2 * time.Hour, 30 * time.Second},
		{"40s path over max 10s", Config{Max: 10 * time.Second}, 40 * time.Second, 10 * time.Second},
		{"40s path within bounds", Config{Min: 5 * time.Second, Max: time.Minute}, 40 * time.Second, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLearner(c.cfg)
			simulate(l, path{timeout: c.T}, 10*time.Hour)
			r := l.Result()
			if !r.Converged {
				t.Fatalf("not converged: %+v", r)
			}
			if c.want == 0 {
				checkConverged(t, c.cfg, r, c.T)
				return
			}
			if r.Interval != c.want {
				t.Fatalf("Interval %v, want %v: %+v", r.Interval, c.want, r)
			}
			if r.Survived >= c.T || (r.Failed != 0 && r.Failed < c.T) {
				t.Fatalf("result %+v contradicts the timeout %v", r, c.T)
			}
		})
	}
}

// A path that drops a fifth of the probes that should survive must not be
// taken for one with a short timeout.
func TestLearnerLossyProbes(t *testing.T) {
	const T = 40 * time.Second
	const seeds = 1000
	bad := 0
	var survived []time.Duration
	for seed := range uint64(seeds) {
		l := NewLearner(Config{})
		simulate(l, path{timeout: T, loss: lossy(0.2, seed)}, 10*time.Hour)
		r := l.Result()
		if !r.Converged || r.Survived >= T {
			t.Fatalf("seed %d: %+v", seed, r)
		}
		if r.Survived < T/2 {
			bad++
		}
		survived = append(survived, r.Survived)
	}
	slices.Sort(survived)
	t.Logf("Survived over %d seeds: min %v, 1%% %v, median %v", seeds, survived[0], survived[seeds/100], survived[seeds/2])
	if bad > seeds/100 {
		t.Fatalf("%d of %d lossy runs concluded the path forgets flows before %v (true timeout %v)", bad, seeds, T/2, T)
	}
	if med := survived[seeds/2]; med < T*4/5 {
		t.Fatalf("median Survived %v, want >= %v", med, T*4/5)
	}
	if survived[0] < T/8 {
		t.Fatalf("worst run concluded Survived %v, a short timeout", survived[0])
	}
}

func TestLearnerConfirm(t *testing.T) {
	l := NewLearner(Config{Confirm: 3})
	l.Report(5*time.Second, true)
	for i := range 2 {
		l.Report(10*time.Second, false)
		if r := l.Result(); r.Failed != 0 {
			t.Fatalf("after %d failures: Failed %v, want none before 3", i+1, r.Failed)
		}
	}
	l.Report(20*time.Second, false) // a longer silence failing confirms only itself
	if r := l.Result(); r.Failed != 20*time.Second {
		t.Fatalf("Failed %v, want 20s", r.Failed)
	}
	l.Report(10*time.Second, false)
	if r := l.Result(); r.Failed != 10*time.Second {
		t.Fatalf("Failed %v, want 10s", r.Failed)
	}
}

func TestLearnerInconsistentFailureIgnored(t *testing.T) {
	l := NewLearner(Config{})
	l.Report(8*time.Second, false)
	l.Report(10*time.Second, false)
	if r := l.Result(); r.Failed != 10*time.Second || r.Interval != DefaultMin {
		t.Fatalf("two failures, nothing survived: %+v, want Failed 10s and Interval Min", r)
	}
	l.Report(12*time.Second, true) // so the failures were losses
	r := l.Result()
	if r.Failed != 0 || r.Survived != 12*time.Second || r.Interval != 5400*time.Millisecond {
		t.Fatalf("after a longer survival: %+v, want Failed 0, Survived 12s, Interval 5.4s", r)
	}
	l.Report(6*time.Second, false)
	l.Report(6*time.Second, false)
	if r := l.Result(); r.Failed != 0 || r.Survived != 12*time.Second {
		t.Fatalf("failures shorter than a survival counted: %+v", r)
	}
	// One survival proved losses: 2+1 failures are needed now.
	for i := range 2 {
		l.Report(30*time.Second, false)
		if r := l.Result(); r.Failed != 0 {
			t.Fatalf("after %d failures with losses seen: Failed %v", i+1, r.Failed)
		}
	}
	l.Report(30*time.Second, false)
	if r := l.Result(); r.Failed != 30*time.Second || r.Probes != 8 {
		t.Fatalf("after 3 failures: %+v, want Failed 30s, 8 probes", r)
	}
	// A survival beyond a confirmed failure forgets every failure: the
	// path changed, or they were losses too.
	l = NewLearner(Config{})
	for _, d := range []time.Duration{10, 10, 20, 30, 40} {
		l.Report(d*time.Second, false)
	}
	l.Report(12*time.Second, true)
	if r := l.Result(); r.Failed != 0 || r.Survived != 12*time.Second {
		t.Fatalf("after a survival beyond Failed: %+v, want Failed 0, Survived 12s", r)
	}
	l.Reset()
	if r := l.Result(); r != (Result{Interval: DefaultStart}) {
		t.Fatalf("after Reset: %+v", r)
	}
	l.Report(30*time.Second, false)
	l.Report(30*time.Second, false)
	if r := l.Result(); r.Failed != 30*time.Second {
		t.Fatalf("Reset kept the losses: %+v", r)
	}
}

func TestLearnerNext(t *testing.T) {
	l := NewLearner(Config{})
	got := l.Next(nil)
	want := []time.Duration{4444 * time.Millisecond, 8888 * time.Millisecond, 17776 * time.Millisecond, 35552 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Fatalf("first Next %v, want %v", got, want)
	}
	if got := l.Next(want); len(got) != 0 {
		t.Fatalf("Next with Parallel probes in flight: %v", got)
	}
	if got := l.Next(want[1:]); !slices.Equal(got, want[:1]) {
		t.Fatalf("Next with 4.444s not in flight nor reported: %v", got)
	}
	// No probe longer than 2^(Parallel-1) × Survived.
	l.Report(want[0], true)
	if got := l.Next(want[1:]); len(got) != 0 {
		t.Fatalf("Next with 4.444s survived: %v, want nothing beyond 35.552s", got)
	}
	l2 := NewLearner(Config{})
	l2.Report(want[1], true)
	if got := l2.Next(want[2:]); !slices.Equal(got, []time.Duration{71104 * time.Millisecond}) {
		t.Fatalf("Next with 8.888s survived: %v", got)
	}
	// 8.888s failed once: it comes up again first, then one point below
	// it (in case it was not a loss).
	l.Report(want[1], false)
	if got := l.Next(want[2:]); !slices.Equal(got, []time.Duration{8888 * time.Millisecond, 6285 * time.Millisecond}) {
		t.Fatalf("Next after a failure: %v", got)
	}
	// Confirmed at 8.888s: bisection between 4.444s and 8.888s, the
	// probes in flight beyond it still counting against Parallel.
	l.Report(want[1], false)
	r := l.Result()
	if r.Failed != want[1] || r.Converged {
		t.Fatalf("%+v", r)
	}
	got = l.Next(want[2:])
	if len(got) != 2 {
		t.Fatalf("bisection Next %v, want 2 points", got)
	}
	for _, d := range got {
		if d <= want[0] || d >= want[1] {
			t.Fatalf("bisection point %v outside (%v, %v)", d, want[0], want[1])
		}
	}
	// Spread geometrically over (4.444s, 8.888s): 2^(1/3), 2^(2/3).
	for i, d := range got {
		if w := float64(want[0]) * math.Pow(2, float64(i+1)/3); math.Abs(float64(d)-w) > float64(time.Millisecond) {
			t.Fatalf("bisection point %d = %v, want %v", i, d, time.Duration(w))
		}
	}
	// With nothing in flight, three points split the factor 2 into gaps
	// of 2^(1/4) <= 1.25: the fourth slot is left free.
	all := l.Next(nil)
	if len(all) != 3 {
		t.Fatalf("bisection with nothing in flight: %v, want 3 points", all)
	}
	for i, d := range all {
		if w := float64(want[0]) * math.Pow(2, float64(i+1)/4); math.Abs(float64(d)-w) > float64(time.Millisecond) {
			t.Fatalf("bisection point %d = %v, want %v", i, d, time.Duration(w))
		}
	}
	l5 := NewLearner(Config{Parallel: 5})
	l5.Report(want[0], true)
	l5.Report(want[1], false)
	l5.Report(want[1], false)
	if got := l5.Next(all); len(got) != 0 {
		t.Fatalf("Next with every gap within Precision: %v", got)
	}
	// Converged: nothing.
	l.Report(5*time.Second, true)
	l.Report(6*time.Second, false)
	l.Report(6*time.Second, false)
	if r := l.Result(); !r.Converged || r.Survived != 5*time.Second || r.Failed != 6*time.Second {
		t.Fatalf("%+v", r)
	}
	if got := l.Next(nil); len(got) != 0 {
		t.Fatalf("Next when converged: %v", got)
	}
}

func TestLearnerNothingSurvives(t *testing.T) {
	l := NewLearner(Config{})
	simulate(l, path{timeout: time.Second}, time.Hour)
	r := l.Result()
	if !r.Converged || r.Survived != 0 || r.Interval != DefaultMin || r.Failed > defFloor*5/4 {
		t.Fatalf("path forgetting after 1s: %+v, want converged at the floor %v with Interval Min", r, defFloor)
	}
}

func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	d := Config{}.WithDefaults()
	if d != (Config{Min: time.Second, Max: 5 * time.Minute, Start: 2 * time.Second, Fraction: 0.45, Parallel: 4, Precision: 0.25, Relearn: 6 * time.Hour, Verify: 15 * time.Minute, Confirm: 2}) {
		t.Fatalf("defaults %+v", d)
	}
	if s := (Config{Min: 10 * time.Second}).WithDefaults().Start; s != 10*time.Second {
		t.Fatalf("default Start under Min 10s: %v", s)
	}
	if s := (Config{Max: 1500 * time.Millisecond, Min: time.Second}).WithDefaults().Start; s != 1500*time.Millisecond {
		t.Fatalf("default Start over Max 1.5s: %v", s)
	}
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Min: -time.Second}, "Min -1s is negative"},
		{Config{Max: -time.Second}, "Max -1s is negative"},
		{Config{Min: time.Minute, Max: time.Second}, "Min 1m0s is longer than Max 1s"},
		{Config{Start: 500 * time.Millisecond}, "Start 500ms is outside [Min 1s, Max 5m0s]"},
		{Config{Start: time.Hour}, "Start 1h0m0s is outside"},
		{Config{Fraction: 1}, "Fraction 1 must be between 0 and 1"},
		{Config{Fraction: -0.5}, "Fraction -0.5 must be between 0 and 1"},
		{Config{Fraction: math.NaN()}, "Fraction NaN must be between 0 and 1"},
		{Config{Max: 20 * time.Hour, Fraction: 0.5}, "would probe silences longer than 24h0m0s"},
		{Config{Parallel: -1}, "Parallel -1 must be between 1 and 64"},
		{Config{Parallel: 65}, "Parallel 65 must be between 1 and 64"},
		{Config{Precision: 0.001}, "Precision 0.001 must be at least 0.01"},
		{Config{Precision: math.NaN()}, "Precision NaN must be at least"},
		{Config{Precision: math.Inf(1)}, "Precision +Inf is too large"},
		{Config{Relearn: -time.Hour}, "Relearn -1h0m0s is negative"},
		{Config{Verify: -time.Hour}, "Verify -1h0m0s is negative"},
		{Config{Confirm: -1}, "Confirm -1 must be between 1 and 16"},
		{Config{Confirm: 17}, "Confirm 17 must be between 1 and 16"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil {
			t.Errorf("%+v: no error, want %q", c.cfg, c.want)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want ErrInvalidConfig with %q", c.cfg, err, c.want)
		}
		// An invalid config still gives a working Learner.
		l := NewLearner(c.cfg)
		simulate(l, path{timeout: 20 * time.Second}, 10*time.Hour)
		if r := l.Result(); !r.Converged || r.Survived >= 20*time.Second {
			t.Errorf("%+v: Learner on an invalid config: %+v", c.cfg, r)
		}
	}
}

func TestResultString(t *testing.T) {
	cases := []struct {
		r        Result
		estimate time.Duration
		want     string
	}{
		{Result{Interval: 2 * time.Second}, 0, "nothing learnt yet, still learning; using 2s"},
		{Result{Interval: 16 * time.Second, Survived: 35552 * time.Millisecond, Failed: 42279 * time.Millisecond, Converged: true}, 38770 * time.Millisecond,
			"path forgets idle flows after ~38.8s (35.552s kept, 42.279s forgotten); using 16s"},
		{Result{Interval: 5 * time.Minute, Survived: defCap, Converged: true}, 0, "path keeps idle flows at least 11m6.667s; using 5m0s"},
		{Result{Interval: time.Second, Failed: 2500 * time.Millisecond, Converged: true}, 0, "path forgets idle flows in less than 2.5s; using 1s"},
		{Result{Interval: 4 * time.Second, Survived: 8888 * time.Millisecond}, 0, "path keeps idle flows at least 8.888s, still learning; using 4s"},
	}
	for _, c := range cases {
		if got := c.r.Estimate(); got != c.estimate {
			t.Errorf("%+v: Estimate %v, want %v", c.r, got, c.estimate)
		}
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.r, got, c.want)
		}
	}
}
