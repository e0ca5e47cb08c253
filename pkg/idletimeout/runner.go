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

// kinds of probes a Runner runs.
const (
	learnProbe     = iota // asked for by Learner.Next
	verifySurvived        // while converged: is Survived still survived?
	verifyFailed          // while converged: is Failed still too long?
)

type outcome struct {
	round    int
	kind     int
	silence  time.Duration
	survived bool
}

// Run drives the search until ctx ends, then cancels its probes and
// waits for them to return. It calls onChange, always from the goroutine
// that called Run, first with the starting Result and then whenever
// Result().Interval or Converged changes.
//
// It keeps up to Parallel probes in flight. A probe whose Prober returns
// an error is retried after a backoff (RetryMin to RetryMax) and never
// counted. While converged it re-probes, every Verify, alternately
// Survived (and starts over once as many of those probes in a row failed
// as a failure needs to be confirmed: the path got shorter) and Failed
// (a survival resumes the search upward: the path got longer, or losses
// had confirmed a failure). It also starts over every Relearn and when
// Relearn is called; probes of an earlier round are canceled and their
// outcomes dropped.
//
// onChange runs on Run's goroutine and should return quickly; it may
// call Result and Relearn. Run must not be called again while it runs: a
// second concurrent call returns at once.
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
		verifyFails int  // verifySurvived failures in a row
		verifyNext  = verifySurvived
		first       = true
	)
	relearnT := time.NewTimer(r.cfg.Relearn)
	defer relearnT.Stop()
	verifyT := time.NewTimer(r.cfg.Verify)
	verifyT.Stop()
	defer verifyT.Stop()

	launch := func(silence time.Duration, kind int) {
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
					case results <- outcome{round: n, kind: kind, silence: silence, survived: survived}:
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
		inFlight, verifying, verifyFails, verifyNext = nil, false, 0, verifySurvived
		l.Reset()
		relearnT.Reset(r.cfg.Relearn)
	}
	defer func() { roundCancel() }()

	newRound()
	publish()
	for {
		for _, d := range l.Next(inFlight) {
			inFlight = append(inFlight, d)
			launch(d, learnProbe)
		}
		select {
		case <-ctx.Done():
			return
		case o := <-results:
			if o.round != round {
				continue
			}
			if o.kind != learnProbe {
				verifying = false
			} else if i := indexOf(inFlight, o.silence); i >= 0 {
				inFlight = append(inFlight[:i], inFlight[i+1:]...)
			}
			l.Report(o.silence, o.survived)
			if o.kind == verifySurvived {
				if o.survived {
					verifyFails = 0
				} else if verifyFails++; verifyFails >= l.confirm() {
					// The path got shorter: what was learnt is wrong.
					newRound()
				} else {
					verifying = true
					launch(o.silence, verifySurvived)
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
			res := l.Result()
			if !res.Converged {
				break
			}
			verifyT.Reset(r.cfg.Verify)
			if verifying || len(inFlight) >= r.cfg.Parallel {
				break // never more than Parallel probes at once
			}
			// Alternate: Survived catches a path that got shorter,
			// Failed one that got longer or a failure confirmed by
			// unlucky losses.
			kind := verifyNext
			if bound(res, kind) == 0 { // converged at the cap, or with nothing surviving
				kind = otherVerify(kind)
			}
			if d := bound(res, kind); d > 0 {
				verifying = true
				launch(d, kind)
			}
			verifyNext = otherVerify(kind)
		}
	}
}

// bound is the silence a verify probe of kind re-probes.
func bound(res Result, kind int) time.Duration {
	if kind == verifyFailed {
		return res.Failed
	}
	return res.Survived
}

func otherVerify(kind int) int {
	if kind == verifyFailed {
		return verifySurvived
	}
	return verifyFailed
}

func indexOf(s []time.Duration, d time.Duration) int {
	for i, v := range s {
		if v == d {
			return i
		}
	}
	return -1
}
