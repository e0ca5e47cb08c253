package xtcp

import (
	"encoding/binary"
	"testing"
)

// kcpSeg is one KCP segment in kcp-go's encoding.
func kcpSeg(cmd byte, sn uint32, data string) []byte {
	b := make([]byte, kcpHeader, kcpHeader+len(data))
	b[4] = cmd
	binary.LittleEndian.PutUint32(b[12:], sn)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(data)))
	return append(b, data...)
}

func TestSentSetFilter(t *testing.T) {
	var s sentSet
	buf := make([]byte, 0, 2048)
	pkt := append(kcpSeg(kcpCmdPush, 10, "ten"), kcpSeg(kcpCmdPush, 11, "eleven")...)
	out, sns := s.filter(pkt, buf, nil)
	if string(out) != string(pkt) || len(sns) != 2 {
		t.Fatalf("first send: %d bytes, %v", len(out), sns)
	}
	s.taken(sns)
	// The same two again, with an ACK and a new segment: only those pass.
	ack := kcpSeg(82, 5, "")
	again := append(append(append([]byte{}, pkt...), ack...), kcpSeg(kcpCmdPush, 12, "twelve")...)
	out, sns = s.filter(again, buf, nil)
	want := append(append([]byte{}, ack...), kcpSeg(kcpCmdPush, 12, "twelve")...)
	if string(out) != string(want) || len(sns) != 1 || sns[0] != 12 {
		t.Fatalf("resend: %x, %v", out, sns)
	}
	// Nothing left of a pure resend; a packet not taken (queue full) is not
	// remembered.
	if out, _ := s.filter(pkt, buf, nil); len(out) != 0 {
		t.Fatalf("pure resend passed: %x", out)
	}
	if out, _ := s.filter(kcpSeg(kcpCmdPush, 12, "twelve"), buf, nil); len(out) == 0 {
		t.Fatal("a segment never taken was dropped")
	}
	// A malformed packet passes whole.
	bad := kcpSeg(kcpCmdPush, 10, "ten")[:kcpHeader+1]
	if out, _ := s.filter(bad, buf, nil); string(out) != string(bad) {
		t.Fatal("malformed packet changed")
	}
	// Numbers far behind the highest are forgotten, not confused with
	// newer ones, also across the wrap of uint32.
	var w sentSet
	w.add(^uint32(0) - 5)
	for sn := ^uint32(0) - 4; sn != 20; sn++ {
		w.add(sn)
	}
	if !w.has(^uint32(0)) || !w.has(3) || w.has(21) {
		t.Fatal("wrap")
	}
	w.add(3 + 3*sentWindow)
	if w.has(3) || !w.has(3+3*sentWindow) || w.has(4) {
		t.Fatal("window jump")
	}
	w.add(4) // long forgotten: ignored
	if w.has(4) || w.has(4+3*sentWindow) {
		t.Fatal("an old number set a newer one's bit")
	}
}
