package idletimeout

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakePath is a Prober's view of a path that forgets flows idle for
// timeout or longer: a probe sleeps its silence in (fake) time and
// survives iff the silence is shorter than the timeout at its end.
type fakePath struct {
	mu         sync.Mutex
	timeout    time.Duration
	loss       func() bool // turns a survival into a false failure
	errs       int         // the next errs probes cannot be run
	ran        int         // probes that returned an outcome
	running    int
	maxRunning int
}

var errDial = errors.New("dial hops: connection refused")

func (p *fakePath) probe(ctx context.Context, silence time.Duration) (bool, error) {
	p.mu.Lock()
	if p.errs > 0 {
		p.errs--
		p.mu.Unlock()
		return false, errDial
	}
	p.running++
	p.maxRunning = max(p.maxRunning, p.running)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	t := time.NewTimer(silence)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ran++
	ok := silence < p.timeout
	if ok && p.loss != nil && p.loss() {
		ok = false
	}
	return ok, nil
}

func (p *fakePath) set(timeout time.Duration) {
	p.mu.Lock()
	p.timeout = timeout
	p.mu.Unlock()
}

func (p *fakePath) stats() (ran, maxRunning int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ran, p.maxRunning
}

// run starts a Runner in the bubble and returns it, the channel of its
// onChange calls, and a stop func that cancels Run and waits for it.
func run(t *testing.T, cfg Config, p *fakePath) (*Runner, <-chan Result, func()) {
	t.Helper()
	changes := make(chan Result, 10000)
	r := NewRunner(cfg, p.probe, func(res Result) { changes <- res })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return r, changes, stop
}

// waitFor returns the first change satisfying ok, failing the test if
// none comes within limit of fake time.
func waitFor(t *testing.T, changes <-chan Result, limit time.Duration, what string, ok func(Result) bool) Result {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case res := <-changes:
			if ok(res) {
				return res
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, limit)
			return Result{}
		}
	}
}

func converged(r Result) bool { return r.Converged }

// waitIdle waits (in fake time) until no probe is in flight, so that a
// change of the path is seen by later probes only.
func waitIdle(t *testing.T, p *fakePath, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		n := p.running
		p.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d probes still in flight after %v", n, limit)
		}
		time.Sleep(time.Second)
	}
}

func TestRunnerConverges(t *testing.T) {
	for _, T := range []time.Duration{5 * time.Second, 40 * time.Second, 2 * time.Hour} {
		t.Run(T.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &fakePath{timeout: T}
				r, changes, stop := run(t, Config{}, p)
				first := <-changes
				if first != (Result{Interval: DefaultStart}) {
					t.Fatalf("first onChange %+v, want the Start interval", first)
				}
				start := time.Now()
				var res Result
				res = waitFor(t, changes, time.Hour, "convergence", func(res Result) bool {
					if res.Interval >= T/2 {
						t.Fatalf("interval %v in use on a path forgetting after %v", res.Interval, T)
					}
					return res.Converged
				})
				t.Logf("T=%v: %+v after %v", T, res, time.Since(start))
				if T > defCap {
					if res.Interval != DefaultMax || res.Survived != defCap || res.Failed != 0 {
						t.Fatalf("beyond the cap: %+v, want Max via Survived = cap", res)
					}
				} else {
					checkConverged(t, Config{}, res, T)
				}
				if got := r.Result(); got.Interval != res.Interval || !got.Converged {
					t.Fatalf("Result() %+v after onChange %+v", got, res)
				}
				stop()
				ran, maxRunning := p.stats()
				if maxRunning > DefaultParallel || maxRunning < 2 {
					t.Fatalf("%d probes ran at once, want 2..%d", maxRunning, DefaultParallel)
				}
				if got := r.Result().Probes; got != ran {
					t.Fatalf("Result.Probes %d, %d probes ran", got, ran)
				}
			})
		})
	}
}

// The path's timeout drops from 40 s to 10 s: a verify probe of Survived
// fails, the Runner starts over and learns the new timeout.
func TestRunnerRelearnsWhenPathShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePath{timeout: 40 * time.Second}
		cfg := Config{Verify: 10 * time.Minute}
		_, changes, _ := run(t, cfg, p)
		res := waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, cfg, res, 40*time.Second)
		waitIdle(t, p, 10*time.Minute)
		p.set(10 * time.Second)
		changed := time.Now()
		res = waitFor(t, changes, time.Hour, "start over", func(r Result) bool { return !r.Converged })
		if res.Interval != DefaultStart || res.Probes != 0 {
			t.Fatalf("after the path shrank: %+v, want a new round at Start", res)
		}
		if d := time.Since(changed); d > cfg.Verify+2*time.Minute {
			t.Fatalf("noticed the shorter path after %v", d)
		}
		res = waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, cfg, res, 10*time.Second)
	})
}

// The path's timeout grows from 5 s to 40 s: a verify probe of Failed
// survives and the search resumes upward, in the same round.
func TestRunnerNoticesLongerPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePath{timeout: 5 * time.Second}
		cfg := Config{Verify: 10 * time.Minute}
		_, changes, _ := run(t, cfg, p)
		before := waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, cfg, before, 5*time.Second)
		waitIdle(t, p, 10*time.Minute)
		p.set(40 * time.Second)
		res := waitFor(t, changes, time.Hour, "convergence on 40s", func(r Result) bool {
			if r.Interval < before.Interval {
				t.Fatalf("interval fell to %v (a new round?) while the path only got longer", r.Interval)
			}
			return r.Converged
		})
		checkConverged(t, cfg, res, 40*time.Second)
		if res.Probes <= before.Probes {
			t.Fatalf("Probes %d after %d: the round was restarted", res.Probes, before.Probes)
		}
	})
}

func TestRunnerPeriodicRelearn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePath{timeout: 5 * time.Second}
		cfg := Config{Relearn: time.Hour, Verify: 5 * time.Hour} // no verify before the relearn
		_, changes, _ := run(t, cfg, p)
		begin := time.Now()
		res := waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, cfg, res, 5*time.Second)
		waitIdle(t, p, 30*time.Minute)
		p.set(40 * time.Second)
		res = waitFor(t, changes, 2*time.Hour, "start over", func(r Result) bool { return !r.Converged })
		if d := time.Since(begin); d != cfg.Relearn || res.Interval != DefaultStart {
			t.Fatalf("started over after %v with %+v, want after Relearn %v at Start", d, res, cfg.Relearn)
		}
		res = waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, cfg, res, 40*time.Second)
	})
}

func TestRunnerRelearnCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePath{timeout: 40 * time.Second}
		r, changes, _ := run(t, Config{}, p)
		waitFor(t, changes, time.Hour, "convergence", converged)
		r.Relearn()
		r.Relearn() // a second call before the first is handled is merged
		res := waitFor(t, changes, time.Minute, "start over", func(r Result) bool { return !r.Converged })
		if res != (Result{Interval: DefaultStart}) {
			t.Fatalf("after Relearn: %+v", res)
		}
		res = waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, Config{}, res, 40*time.Second)
		synctest.Wait()
		select {
		case res := <-changes:
			t.Fatalf("change after re-convergence with nothing happening: %+v", res)
		default:
		}
	})
}

// Probes that cannot be run are retried and never counted as losses.
func TestRunnerProbeErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePath{timeout: 40 * time.Second, errs: 30}
		r, changes, stop := run(t, Config{}, p)
		res := waitFor(t, changes, time.Hour, "convergence", converged)
		checkConverged(t, Config{}, res, 40*time.Second)
		stop()
		if ran, _ := p.stats(); r.Result().Probes != ran {
			t.Fatalf("Probes %d, %d probes ran (errors counted?)", r.Result().Probes, ran)
		}
		if p.errs != 0 {
			t.Fatalf("%d errors left: the failed probes were not retried", p.errs)
		}
	})
}

// A fifth of the probes that should survive are lost: not a short timeout.
func TestRunnerLossyProbes(t *testing.T) {
	const T = 40 * time.Second
	for seed := range uint64(8) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakePath{timeout: T, loss: lossy(0.2, seed)}
			_, changes, _ := run(t, Config{}, p)
			res := waitFor(t, changes, 2*time.Hour, "convergence", converged)
			if res.Survived < T/2 || res.Survived >= T {
				t.Fatalf("seed %d: %+v on a %v path with 20%% loss", seed, res, T)
			}
		})
	}
}

func TestRunnerStopsPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePath{timeout: time.Hour}
		r, changes, stop := run(t, Config{}, p)
		<-changes
		time.Sleep(10 * time.Second) // fake time: probes of 17s and 35s in flight
		if _, running := p.stats(); running < 2 {
			t.Fatalf("%d probes in flight", running)
		}
		// A second Run while the first runs returns at once.
		ret := make(chan struct{})
		go func() { r.Run(t.Context()); close(ret) }()
		synctest.Wait()
		select {
		case <-ret:
		default:
			t.Fatal("a second concurrent Run did not return")
		}
		at := time.Now()
		stop()
		if d := time.Since(at); d != 0 {
			t.Fatalf("Run took %v to return after cancel", d)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.running != 0 {
			t.Fatalf("%d probes still running after Run returned", p.running)
		}
	})
}

func TestRunnerBounds(t *testing.T) {
	cfg := Config{Min: 10 * time.Second, Max: 30 * time.Second}
	for _, c := range []struct {
		T, want time.Duration
	}{{5 * time.Second, 10 * time.Second}, {2 * time.Hour, 30 * time.Second}, {20 * time.Second, 10 * time.Second}, {40 * time.Second, 17818 * time.Millisecond}} {
		synctest.Test(t, func(t *testing.T) {
			p := &fakePath{timeout: c.T}
			_, changes, _ := run(t, cfg, p)
			if first := <-changes; first.Interval != cfg.Min {
				t.Fatalf("first interval %v, want Min %v (the default Start raised to it)", first.Interval, cfg.Min)
			}
			res := waitFor(t, changes, 2*time.Hour, "convergence", converged)
			if res.Interval != c.want {
				t.Fatalf("T=%v: %+v, want Interval %v", c.T, res, c.want)
			}
		})
	}
}

// Twelve hours on a 40 s path losing a fifth of the probes: the interval
// in use is always safe, and most of the time near the best one.
func TestRunnerLossyLongRun(t *testing.T) {
	const T = 40 * time.Second
	const span = 12 * time.Hour
	for seed := range uint64(4) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakePath{timeout: T, loss: lossy(0.2, seed)}
			_, changes, stop := run(t, Config{}, p)
			begin := time.Now()
			cur, since := (<-changes).Interval, begin
			var weighted float64 // interval × time in use
			rounds := 1
			deadline := time.After(span)
		loop:
			for {
				select {
				case res := <-changes:
					if res.Interval >= T/2 {
						t.Fatalf("seed %d: interval %v in use on a %v path", seed, res.Interval, T)
					}
					if res.Probes == 0 {
						rounds++
					}
					weighted += float64(cur) * float64(time.Since(since))
					cur, since = res.Interval, time.Now()
				case <-deadline:
					break loop
				}
			}
			weighted += float64(cur) * float64(time.Since(since))
			stop()
			mean := time.Duration(weighted / float64(span))
			t.Logf("seed %d: mean interval %v over %v, %d learning rounds", seed, mean, span, rounds)
			if mean < T/4 {
				t.Fatalf("seed %d: mean interval %v, want >= %v", seed, mean, T/4)
			}
		})
	}
}
