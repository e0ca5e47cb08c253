package xtcp

import (
	"bytes"
	"net"
	"testing"
)

func frames(sizes ...int) []*[]byte {
	var out []*[]byte
	for i, n := range sizes {
		b := bytes.Repeat([]byte{byte(i)}, n)
		out = append(out, &b)
	}
	return out
}

func TestPackGroupsEqualFrames(t *testing.T) {
	p := &path{gso: &gsoState{bufs: make([][]byte, gsoGroups), oob: map[int][]byte{}}}
	addr := &net.UDPAddr{}
	// three full frames and a short one: one offload message; then a
	// lone frame of another size: a plain datagram.
	msgs := p.pack(nil, frames(1380, 1380, 1380, 200, 900), addr)
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if len(msgs[0].Buffers[0]) != 3*1380+200 || msgs[0].OOB == nil {
		t.Fatalf("first message: %d bytes, oob %v", len(msgs[0].Buffers[0]), msgs[0].OOB != nil)
	}
	if !bytes.Equal(msgs[0].Buffers[0][1380:1381], []byte{1}) || !bytes.Equal(msgs[0].Buffers[0][3*1380:3*1380+1], []byte{3}) {
		t.Fatal("frames out of order in the offload buffer")
	}
	if len(msgs[1].Buffers[0]) != 900 || msgs[1].OOB != nil {
		t.Fatalf("second message: %d bytes, oob %v", len(msgs[1].Buffers[0]), msgs[1].OOB != nil)
	}
	// At most 64 segments and 65507 bytes per message.
	var sizes []int
	for range 100 {
		sizes = append(sizes, 1380)
	}
	msgs = p.pack(nil, frames(sizes...), addr)
	total := 0
	for _, m := range msgs {
		if n := len(m.Buffers[0]); n > 65507 || n/1380 > 64 {
			t.Fatalf("message of %d bytes", n)
		}
		total += len(m.Buffers[0])
	}
	if total != 100*1380 {
		t.Fatalf("%d bytes packed, want %d", total, 100*1380)
	}
	// Without offload every frame is its own datagram.
	p.gso = nil
	if msgs := p.pack(nil, frames(1380, 1380, 1380), addr); len(msgs) != 3 || msgs[0].OOB != nil {
		t.Fatalf("without offload: %d messages", len(msgs))
	}
}
