package idletimeout

import (
	"slices"
	"testing"
	"time"
)

// FuzzLearner feeds a Learner arbitrary probe outcomes (as a lossy or
// changing path, or a buggy caller, could) and checks its invariants.
func FuzzLearner(f *testing.F) {
	f.Add(uint8(4), uint8(2), []byte{0x10, 0x91, 0x22, 0xa3, 0x05})
	f.Add(uint8(1), uint8(1), []byte{0xff, 0x00, 0x7f, 0x80})
	f.Add(uint8(7), uint8(3), []byte("lossy path, then a longer one"))
	f.Fuzz(func(t *testing.T, parallel, confirm uint8, ops []byte) {
		cfg := Config{Parallel: int(parallel%8) + 1, Confirm: int(confirm%4) + 1}
		l := NewLearner(cfg)
		c := l.Config()
		capS := scale(c.Max, 1/c.Fraction)
		var inFlight []time.Duration
		for _, op := range ops {
			next := l.Next(inFlight)
			if len(next) > c.Parallel-len(inFlight) {
				t.Fatalf("Next(%v) = %v: more than Parallel %d", inFlight, next, c.Parallel)
			}
			for _, d := range next {
				if d <= 0 || d > capS || slices.Contains(inFlight, d) {
					t.Fatalf("Next(%v) = %v: bad silence %v", inFlight, next, d)
				}
				inFlight = append(inFlight, d)
			}
			if l.Result().Converged && len(next) > 0 {
				t.Fatalf("Next returned %v while converged", next)
			}
			switch {
			case op&0x80 != 0 && len(inFlight) > 0: // one in flight completes
				i := int(op&0x3f) % len(inFlight)
				d := inFlight[i]
				inFlight = slices.Delete(inFlight, i, i+1)
				l.Report(d, op&0x40 != 0)
			case op&0xc0 == 0x40: // an arbitrary report (a verify probe, a bug)
				l.Report(time.Duration(op&0x3f)*time.Second, op&1 != 0)
			case op == 0x3f:
				l.Reset()
				inFlight = nil
			}
			r := l.Result()
			if r.Interval < c.Min || r.Interval > c.Max {
				t.Fatalf("Interval %v outside [%v, %v]: %+v", r.Interval, c.Min, c.Max, r)
			}
			if r.Failed != 0 && r.Failed <= r.Survived {
				t.Fatalf("Failed %v <= Survived %v", r.Failed, r.Survived)
			}
		}
	})
}
