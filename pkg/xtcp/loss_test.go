package xtcp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// lossyRelay is a relay that loses each packet at random as two NATs in a
// row would, each dropping percent of what it forwards: a one-way trip
// survives with probability (1-percent/100)². The loss comes from seeded
// sources, one per direction (each direction has one pump goroutine), so
// the same packet sequence meets the same fate.
func lossyRelay(t *testing.T, a, b netip.AddrPort, percent int, seed uint64) *relay {
	rngs := [2]*rand.Rand{rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 2))}
	r := &relay{forA: listen(t), forB: listen(t), a: a, b: b}
	r.lose = func(aToB bool) bool {
		rng := rngs[0]
		if !aToB {
			rng = rngs[1]
		}
		first, second := rng.IntN(100) < percent, rng.IntN(100) < percent
		return first || second
	}
	return startRelay(t, r)
}

// TestPunchLoss punches through 10 % loss on each of two NATs in each
// direction (19 % per one-way trip), with the default punch settings and
// hop's punch timeout (6 s), the peer's unreachable LAN address listed
// first as in real candidate lists; then runs a stream over the path. Every
// seed must succeed: probes, ProbeAcks and Selected are all repeated, the
// visitor's session answers a Selected it sees again, and the owner takes
// the visitor's keepalive as confirmation if every SelectedAck was lost.
func TestPunchLoss(t *testing.T) {
	checkLeaks(t)
	for _, percent := range []int{10, 20} {
		var packets, maxPackets int
		var worst time.Duration
		const seeds = 8
		for seed := range uint64(seeds) {
			res := punchThroughLoss(t, percent, seed)
			packets += res.PacketsSent
			maxPackets = max(maxPackets, res.PacketsSent)
			worst = max(worst, res.Elapsed)
		}
		t.Logf("%d %% loss per NAT (two NATs, each direction): %d punches, owner sent %d packets on average, at most %d of %d; slowest %v",
			percent, seeds, packets/seeds, maxPackets, DefaultPunchMaxPackets, worst.Round(time.Millisecond))
	}
}

func punchThroughLoss(t *testing.T, percent int, seed uint64) *PunchResult {
	t.Helper()
	vconn, oconn := listen(t), listen(t)
	r := lossyRelay(t, addrOf(vconn), addrOf(oconn), percent, seed)
	sid := NewSessionID()
	cfg := func(role Role, peer netip.AddrPort) PunchConfig {
		return PunchConfig{Key: testSecret, SessionID: sid, Role: role, Timeout: 6 * time.Second,
			Remote: []Candidate{host(deadPort(t)), {Addr: peer, Kind: ServerReflexive}}}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	scfg := testSessionConfig()
	scfg.KeepaliveTimeout = 5 * time.Second // keepalives are lost too
	vch := visitorDial(ctx, vconn, cfg(RoleVisitor, addrOf(r.forA)), scfg)
	ores, oerr := Punch(ctx, oconn, cfg(RoleOwner, addrOf(r.forB)))
	v := <-vch
	if v.s != nil {
		defer v.s.Close()
	}
	if oerr != nil || v.err != nil {
		t.Fatalf("%d %% loss, seed %d: owner %v; visitor %v", percent, seed, oerr, v.err)
	}
	if ores.Remote != addrOf(r.forB) || v.res.Remote != addrOf(r.forA) {
		t.Fatalf("seed %d: owner uses %v, visitor %v", seed, ores.Remote, v.res.Remote)
	}
	os, err := AcceptKCP(oconn, ores.Remote, testSecret, sid, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Close()
	msg := []byte(fmt.Sprintf("through %d %% loss, seed %d", percent, seed))
	if got, err := echoOnce(v.s, os, msg); err != nil || string(got) != string(msg) {
		t.Fatalf("seed %d: echo %q %v", seed, got, err)
	}
	if r.dropped.Load() == 0 {
		t.Errorf("seed %d: nothing was lost", seed)
	}
	return ores
}
