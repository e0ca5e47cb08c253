package xtcp

import (
	"net"

	"golang.org/x/net/ipv4"
)

// Sealed KCP packets leave through a send queue drained by one goroutine
// that hands every packet waiting at that moment to the kernel with a
// single sendmmsg (x/net's WriteBatch): KCP flushes in bursts, and one
// syscall per 1.4 KB packet was most of the path's CPU time.
const (
	sendQueue = 512 // sealed packets waiting for the sender
	sendBatch = 64  // packets per sendmmsg at most
)

// batchWriter is the part of ipv4.PacketConn and ipv6.PacketConn we use;
// their Message types are the same.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// startBatchSender switches the path's data frames to the send queue.
func (p *path) startBatchSender() {
	p.sendq = make(chan *[]byte, sendQueue)
	p.wg.Add(1)
	go p.batchSend()
}

// enqueue seals payload and queues it for the sender. It blocks while the
// queue is full, which pushes back on KCP's flush.
func (p *path) enqueue(payload []byte) error {
	bp, _ := p.bufs.Get().(*[]byte)
	if need := len(payload) + FrameOverhead; bp == nil || cap(*bp) < need {
		b := make([]byte, 0, max(need, 1536))
		bp = &b
	}
	*bp = p.sealer.seal((*bp)[:0], payload)
	select {
	case p.sendq <- bp:
		return nil
	case <-p.done:
		p.bufs.Put(bp)
		return p.err()
	}
}

func (p *path) batchSend() {
	defer p.wg.Done()
	var bw batchWriter
	if p.remote.Addr().Unmap().Is4() {
		bw = ipv4.NewPacketConn(p.conn)
	}
	addr := net.UDPAddrFromAddrPort(p.remote)
	msgs := make([]ipv4.Message, 0, sendBatch)
	held := make([]*[]byte, 0, sendBatch)
	for {
		select {
		case bp := <-p.sendq:
			held = append(held[:0], bp)
		case <-p.done:
			return
		}
	more:
		for len(held) < sendBatch {
			select {
			case bp := <-p.sendq:
				held = append(held, bp)
			default:
				break more
			}
		}
		if bw == nil || len(held) == 1 {
			for _, bp := range held {
				p.write(*bp)
			}
		} else {
			msgs = msgs[:0]
			for _, bp := range held {
				msgs = append(msgs, ipv4.Message{Buffers: [][]byte{*bp}, Addr: addr})
			}
			p.writeBatch(bw, msgs)
		}
		for i, bp := range held {
			p.bufs.Put(bp)
			held[i] = nil
		}
	}
}

// writeBatch sends msgs, falling back to single writes if the kernel
// refuses sendmmsg.
func (p *path) writeBatch(bw batchWriter, msgs []ipv4.Message) {
	for len(msgs) > 0 {
		n, err := bw.WriteBatch(msgs, 0)
		if err != nil {
			for _, m := range msgs {
				p.write(m.Buffers[0])
			}
			return
		}
		for _, m := range msgs[:n] {
			p.pktOut.Add(1)
			p.bytesOut.Add(uint64(len(m.Buffers[0])))
		}
		msgs = msgs[n:]
	}
}
