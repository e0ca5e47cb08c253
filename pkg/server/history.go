package server

import (
	"container/list"
	"slices"
	"time"
)

// maxHistory bounds the client IDs whose ended sessions the server
// remembers: client IDs are chosen by clients, so the history must not
// grow with them. The client whose last session ended longest ago is
// forgotten first.
const maxHistory = 1024

// maxLosses bounds the losses kept per client: the most recent ones.
const maxLosses = 16

// history is ClientHistory per client ID, at most max of them, the least
// recently ended evicted first. Not safe for concurrent use.
type history struct {
	max   int
	byID  map[string]*list.Element // of *historyEntry
	order list.List                // most recently ended first
}

type historyEntry struct {
	id string
	h  ClientHistory
}

func newHistory(max int) history { return history{max: max, byID: map[string]*list.Element{}} }

// record notes that the session of k described by info ended at t
// because of cause.
func (h *history) record(k clientKey, cause error, t time.Time, info sessionInfo) {
	id := k.String()
	e := h.byID[id]
	if e == nil {
		e = h.order.PushFront(&historyEntry{id: id})
		h.byID[id] = e
	} else {
		h.order.MoveToFront(e)
	}
	he := e.Value.(*historyEntry)
	he.h.Sessions++
	he.h.LastCause = cause
	he.h.LastEnd = t
	he.h.User, he.h.ClientID = k.user, k.clientID
	he.h.Addr, he.h.NAT, he.h.ConnectedAt = info.addr, info.nat, info.connectedAt
	he.h.Proxies, he.h.ProxyTypes = info.proxies, info.types
	why := "session ended"
	if cause != nil {
		why = cause.Error()
	}
	if len(he.h.Losses) == maxLosses {
		he.h.Losses = slices.Delete(he.h.Losses, 0, 1)
	}
	he.h.Losses = append(he.h.Losses, Loss{At: t, Cause: why})
	for h.order.Len() > h.max {
		old := h.order.Back()
		h.order.Remove(old)
		delete(h.byID, old.Value.(*historyEntry).id)
	}
}

func (h *history) snapshot() map[string]ClientHistory {
	out := make(map[string]ClientHistory, len(h.byID))
	for id, e := range h.byID {
		h := e.Value.(*historyEntry).h
		h.Losses = slices.Clone(h.Losses)
		h.Proxies, h.ProxyTypes = slices.Clone(h.Proxies), slices.Clone(h.ProxyTypes)
		out[id] = h
	}
	return out
}
