package idletimeout

import (
	"context"
	"sync"
	"time"

	"github.com/hopproxy/hop/pkg/backoff"
)

// Retry delays after a Prober error (the probe could not be run). The
// same silence is tried again after each delay, for as long as the
// learning round lasts.
const (
	RetryMin = time.Second
	RetryMax = time.Minute
)

// Runner drives a Learner with a Prober. See Run.
type Runner struct {
	cfg      Config
	probe    Prober
	onChange func(Result)
	relearn  chan struct{}

	mu      sync.Mutex
	res     Result
	running bool
}

// NewRunner returns a Runner for cfg (defaults filled in; cfg should pass
// Validate, see NewLearner) that probes with probe and calls onChange
// (which may be nil) on every change of the interval or of convergence.
func NewRunner(cfg Config, probe Prober, onChange func(Result)) *Runner {
	l := NewLearner(cfg)
	return &Runner{
		cfg:      l.Config(),
		probe:    probe,
		onChange: onChange,
		relearn:  make(chan struct{}, 1),
		res:      l.Result(),
	}
}

// Relearn makes the running Runner start over (for example after a
// session loss caused by silence). Safe from any goroutine; calls made
// while Run is not running take effect when it starts.
func (r *Runner) Relearn() {
	select {
	case r.relearn <- struct{}{}:
	default:
	}
}

// Result returns what the Runner knows now.
func (r *Runner) Result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res
}

type outcome struct {
	round    int
	silence  time.Duration
	survived bool
	verify   bool
}

// Run drives the search until ctx ends, then cancels its probes and
// waits for them to return. It calls onChange, always from the goroutine
// that called Run, first with the starting Result and then whenever
// Result().Interval or Converged changes.
//
// It keeps up to Parallel probes in flight. A probe whose Prober returns
// an error is retried after a backoff (RetryMin to RetryMax) and never
// counted. While converged it re-probes Survived every Verify, and starts
// over once Confirm of those probes in a row failed. It also starts over
// every Relearn and when Relearn is called; probes of an earlier round
// are canceled and their outcomes dropped.
//
// Run must not be called again while it runs: a second concurrent call
// returns at once.
func (r *Runner) Run(ctx context.Context) {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	l := NewLearner(r.cfg)
	results := make(chan outcome)
	var (
		round       int
		roundCtx    context.Context
		roundCancel context.CancelFunc = func() {}
		inFlight    []time.Duration
		verifying   bool // a verify probe is in flight
		verifyFails int
		first       = true
	)
	relearnT := time.NewTimer(r.cfg.Relearn)
	defer relearnT.Stop()
	verifyT := time.NewTimer(r.cfg.Verify)
	verifyT.Stop()
	defer verifyT.Stop()

	launch := func(silence time.Duration, verify bool) {
		rc, n := roundCtx, round
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := backoff.Backoff{Min: RetryMin, Max: RetryMax}
			for {
				survived, err := r.probe(rc, silence)
				if rc.Err() != nil {
					return
				}
				if err == nil {
					select {
					case results <- outcome{round: n, silence: silence, survived: survived, verify: verify}:
					case <-rc.Done():
					}
					return
				}
				if !backoff.Sleep(rc, b.Next()) {
					return
				}
			}
		}()
	}
	publish := func() {
		res := l.Result()
		r.mu.Lock()
		old := r.res
		r.res = res
		r.mu.Unlock()
		if res.Converged != old.Converged || first {
			verifyT.Stop()
			if res.Converged {
				verifyT.Reset(r.cfg.Verify)
			}
		}
		if (first || res.Interval != old.Interval || res.Converged != old.Converged) && r.onChange != nil {
			r.onChange(res)
		}
		first = false
	}
	newRound := func() {
		roundCancel()
		round++
		roundCtx, roundCancel = context.WithCancel(ctx)
		inFlight, verifying, verifyFails = nil, false, 0
		l.Reset()
		relearnT.Reset(r.cfg.Relearn)
	}
	defer func() { roundCancel() }()

	newRound()
	publish()
	for {
		for _, d := range l.Next(inFlight) {
			inFlight = append(inFlight, d)
			launch(d, false)
		}
		select {
		case <-ctx.Done():
			return
		case o := <-results:
			if o.round != round {
				continue
			}
			if o.verify {
				verifying = false
			} else if i := indexOf(inFlight, o.silence); i >= 0 {
				inFlight = append(inFlight[:i], inFlight[i+1:]...)
			}
			l.Report(o.silence, o.survived)
			if o.verify {
				if o.survived {
					verifyFails = 0
				} else if verifyFails++; verifyFails >= r.cfg.Confirm {
					newRound()
					publish()
					continue
				} else {
					verifying = true
					launch(o.silence, true)
				}
			}
			publish()
		case <-r.relearn:
			newRound()
			publish()
		case <-relearnT.C:
			newRound()
			publish()
		case <-verifyT.C:
			if res := l.Result(); res.Converged && res.Survived > 0 && !verifying {
				verifying = true
				launch(res.Survived, true)
			}
			if l.Result().Converged {
				verifyT.Reset(r.cfg.Verify)
			}
		}
	}
}

func indexOf(s []time.Duration, d time.Duration) int {
	for i, v := range s {
		if v == d {
			return i
		}
	}
	return -1
}
