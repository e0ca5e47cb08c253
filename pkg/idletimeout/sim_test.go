package idletimeout

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// path is a fake network path that forgets flows idle for timeout or
// longer. loss, if set, turns a survival into a false failure.
type path struct {
	timeout time.Duration
	loss    func() bool
}

func (p path) probe(silence time.Duration) bool {
	ok := silence < p.timeout
	if ok && p.loss != nil && p.loss() {
		return false
	}
	return ok
}

// lossy returns a loss function dropping a fraction of probes, seeded.
func lossy(fraction float64, seed uint64) func() bool {
	rng := rand.New(rand.NewPCG(seed, 12))
	return func() bool { return rng.Float64() < fraction }
}

type event struct {
	at      time.Duration
	silence time.Duration
}

type events []event

func (e events) Len() int           { return len(e) }
func (e events) Less(i, j int) bool { return e[i].at < e[j].at }
func (e events) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)        { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// simulate drives l against p without goroutines: each probe Next asks
// for completes silence later. It stops once l converged and no probe is
// in flight, or after limit of simulated time, and returns when Result
// first reported Converged (or -1).
func simulate(l *Learner, p path, limit time.Duration) (convergedAt time.Duration) {
	var q events
	var inFlight []time.Duration
	now := time.Duration(0)
	convergedAt = -1
	for {
		for _, d := range l.Next(inFlight) {
			inFlight = append(inFlight, d)
			heap.Push(&q, event{at: now + d, silence: d})
		}
		if q.Len() == 0 {
			return convergedAt
		}
		e := heap.Pop(&q).(event)
		now = e.at
		if now > limit {
			return convergedAt
		}
		inFlight = append(inFlight[:indexOf(inFlight, e.silence)], inFlight[indexOf(inFlight, e.silence)+1:]...)
		l.Report(e.silence, p.probe(e.silence))
		if convergedAt < 0 && l.Result().Converged {
			convergedAt = now
		}
	}
}
