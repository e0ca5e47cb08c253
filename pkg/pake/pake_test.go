package pake

import (
	"bytes"
	"testing"

	"github.com/gtank/ristretto255"
)

func exchange(t *testing.T, secretA, secretB, chA, chB, sidA, sidB []byte) ([]byte, []byte, error, error) {
	t.Helper()
	a := Start(Initiator, secretA, chA, sidA, []byte("A"))
	b := Start(Responder, secretB, chB, sidB, []byte("B"))
	ka, errA := a.Finish(b.Share(), []byte("B"))
	kb, errB := b.Finish(a.Share(), []byte("A"))
	return ka, kb, errA, errB
}

func TestSameSecretSameKey(t *testing.T) {
	ka, kb, ea, eb := exchange(t, []byte("token"), []byte("token"), []byte("ci"), []byte("ci"), []byte("sid"), []byte("sid"))
	if ea != nil || eb != nil {
		t.Fatal(ea, eb)
	}
	if !bytes.Equal(ka, kb) || len(ka) != ISKSize {
		t.Fatalf("keys differ: %x %x", ka, kb)
	}
	if !Verify(kb, Initiator, Confirm(ka, Initiator)) || !Verify(ka, Responder, Confirm(kb, Responder)) {
		t.Fatal("confirmation tags do not verify")
	}
	if Verify(ka, Initiator, Confirm(ka, Responder)) {
		t.Fatal("a reflected tag verifies")
	}
}

func TestAnyDifferenceGivesOtherKeys(t *testing.T) {
	for _, c := range []struct {
		name                   string
		sa, sb, ca, cb, ia, ib string
	}{
		{"secret", "token", "tokem", "ci", "ci", "sid", "sid"},
		{"channel", "token", "token", "ci-1", "ci-2", "sid", "sid"},
		{"sid", "token", "token", "ci", "ci", "sid-1", "sid-2"},
	} {
		ka, kb, ea, eb := exchange(t, []byte(c.sa), []byte(c.sb), []byte(c.ca), []byte(c.cb), []byte(c.ia), []byte(c.ib))
		if ea != nil || eb != nil {
			t.Fatalf("%s: %v %v", c.name, ea, eb)
		}
		if bytes.Equal(ka, kb) {
			t.Errorf("%s differs but the keys are equal", c.name)
		}
		if Verify(kb, Initiator, Confirm(ka, Initiator)) {
			t.Errorf("%s differs but the tag verifies", c.name)
		}
	}
}

func TestFreshSharesEveryTime(t *testing.T) {
	a1 := Start(Initiator, []byte("s"), nil, nil, nil)
	a2 := Start(Initiator, []byte("s"), nil, nil, nil)
	if bytes.Equal(a1.Share(), a2.Share()) {
		t.Fatal("two exchanges sent the same share")
	}
}

func TestBadSharesRefused(t *testing.T) {
	s := Start(Responder, []byte("s"), nil, nil, nil)
	identity := ristretto255.NewIdentityElement().Bytes()
	nonCanonical := bytes.Repeat([]byte{0xff}, ShareSize)
	for name, share := range map[string][]byte{
		"empty": nil, "short": make([]byte, 31), "long": make([]byte, 33),
		"identity": identity, "non-canonical": nonCanonical,
	} {
		if _, err := s.Finish(share, nil); err != ErrBadShare {
			t.Errorf("%s: got %v, want ErrBadShare", name, err)
		}
	}
}

// The associated data of each side is bound into the key.
func TestADBound(t *testing.T) {
	a := Start(Initiator, []byte("s"), nil, nil, []byte("alice"))
	b := Start(Responder, []byte("s"), nil, nil, []byte("bob"))
	ka, _ := a.Finish(b.Share(), []byte("bob"))
	kb, _ := b.Finish(a.Share(), []byte("mallory"))
	if bytes.Equal(ka, kb) {
		t.Fatal("a changed AD gave the same key")
	}
}

func FuzzFinish(f *testing.F) {
	f.Add(Start(Initiator, []byte("s"), nil, nil, nil).Share(), []byte("ad"))
	f.Add(ristretto255.NewIdentityElement().Bytes(), []byte{})
	f.Add(bytes.Repeat([]byte{0xff}, ShareSize), []byte(nil))
	s := Start(Responder, []byte("s"), []byte("ci"), []byte("sid"), nil)
	f.Fuzz(func(t *testing.T, share, ad []byte) {
		isk, err := s.Finish(share, ad)
		if err == nil && len(isk) != ISKSize {
			t.Fatalf("ISK of %d bytes", len(isk))
		}
	})
}

func BenchmarkExchange(b *testing.B) {
	for b.Loop() {
		x := Start(Initiator, []byte("token"), []byte("ci"), []byte("sid"), nil)
		y := Start(Responder, []byte("token"), []byte("ci"), []byte("sid"), nil)
		x.Finish(y.Share(), nil)
		y.Finish(x.Share(), nil)
	}
}
