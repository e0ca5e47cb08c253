package xtcp

import (
	"net"
	"net/netip"

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
	if gsoSupported && bw != nil {
		p.gso = &gsoState{bufs: make([][]byte, gsoGroups), oob: map[int][]byte{}}
		for i := range p.gso.bufs {
			p.gso.bufs[i] = make([]byte, 0, 65507)
		}
	}
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
			msgs = p.pack(msgs[:0], held, addr)
			if err := p.writeBatch(bw, msgs); err != nil && p.gso != nil {
				// The kernel refused segmentation offload: never again,
				// and these frames one by one.
				p.log.Debug("UDP segmentation offload refused; sending packets one by one", "err", err)
				p.gso = nil
				for _, bp := range held {
					p.write(*bp)
				}
			}
		}
		for i, bp := range held {
			p.bufs.Put(bp)
			held[i] = nil
		}
	}
}

// gsoState holds what segmentation offload needs: a buffer per group of
// equal-sized frames sent as one, and the control message per size.
type gsoState struct {
	bufs [][]byte
	oob  map[int][]byte
}

// gsoGroups bounds the groups of one batch (a batch of 64 full-size
// frames makes two).
const gsoGroups = 4

// pack turns held frames into messages: runs of equal-sized frames (and one
// shorter frame after them) become one segmentation-offload message each,
// the rest single datagrams.
func (p *path) pack(msgs []ipv4.Message, held []*[]byte, addr *net.UDPAddr) []ipv4.Message {
	groups := 0
	for i := 0; i < len(held); {
		size := len(*held[i])
		maxSeg := min(64, 65507/max(size, 1))
		j := i + 1
		for j < len(held) && j-i < maxSeg && len(*held[j]) == size {
			j++
		}
		if j < len(held) && j-i < maxSeg && len(*held[j]) < size {
			j++
		}
		if g := p.gso; g != nil && j-i >= 2 && groups < gsoGroups {
			buf := g.bufs[groups][:0]
			for _, bp := range held[i:j] {
				buf = append(buf, *bp...)
			}
			g.bufs[groups] = buf
			oob, ok := g.oob[size]
			if !ok {
				oob = gsoOOB(size)
				g.oob[size] = oob
			}
			msgs = append(msgs, ipv4.Message{Buffers: [][]byte{buf}, OOB: oob, Addr: addr})
			groups++
		} else {
			for _, bp := range held[i:j] {
				msgs = append(msgs, ipv4.Message{Buffers: [][]byte{*bp}, Addr: addr})
			}
		}
		i = j
	}
	return msgs
}

// writeBatch sends msgs and returns the kernel's error, if any (the
// messages from the failed one on were not sent).
func (p *path) writeBatch(bw batchWriter, msgs []ipv4.Message) error {
	for len(msgs) > 0 {
		n, err := bw.WriteBatch(msgs, 0)
		if err != nil {
			return err
		}
		for _, m := range msgs[:n] {
			p.pktOut.Add(1)
			p.bytesOut.Add(uint64(len(m.Buffers[0])))
		}
		msgs = msgs[n:]
	}
	return nil
}

// recvBatch reads the packets of a KCP path with recvmmsg, many per
// syscall, and hands them out one at a time.
type recvBatch struct {
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
	n, i int
}

// recvBatchLen is how many packets one recvmmsg may return; recvBufLen
// holds any packet of a KCP path (an oversize one is cut and then fails
// authentication).
const (
	recvBatchLen = 32
	recvBufLen   = 2048
)

// startBatchReceiver makes readData read with recvmmsg. KCP paths only:
// datagram paths carry packets larger than recvBufLen.
func (p *path) startBatchReceiver() {
	if !p.remote.Addr().Unmap().Is4() {
		return
	}
	rb := &recvBatch{pc: ipv4.NewPacketConn(p.conn), msgs: make([]ipv4.Message, recvBatchLen)}
	for i := range rb.msgs {
		rb.msgs[i].Buffers = [][]byte{make([]byte, recvBufLen)}
	}
	p.rb = rb
}

// readPacket returns the next packet and its source: from the batch when
// there is one, else with a single read into buf. The packet stays valid
// until the next call.
func (p *path) readPacket(buf []byte) ([]byte, netip.AddrPort, error) {
	rb := p.rb
	if rb == nil {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		return buf[:n], from, err
	}
	if rb.i >= rb.n {
		n, err := rb.pc.ReadBatch(rb.msgs, 0)
		if err != nil {
			return nil, netip.AddrPort{}, err
		}
		rb.n, rb.i = n, 0
	}
	m := &rb.msgs[rb.i]
	rb.i++
	var from netip.AddrPort
	if ua, ok := m.Addr.(*net.UDPAddr); ok {
		from = ua.AddrPort()
	}
	return m.Buffers[0][:m.N], from, nil
}
