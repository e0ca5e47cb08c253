// Package vhost serves the http and https proxies of hops on the shared
// vhost ports: a Router maps a host name, a URL path and a basic-auth
// user to the route of one proxy, HTTPServer forwards HTTP requests to
// the route of their Host (net/http with httputil.ReverseProxy), and
// HTTPSServer forwards TLS connections by the server name of their
// ClientHello (package sni), without terminating TLS.
//
// Routing follows frp: an exact host name beats a wildcard
// ("*.example.com" matches every name below example.com, the more labels
// the more specific), within a host the longest location that is a
// prefix of the path wins, and a route for the request's basic-auth user
// (routeByHTTPUser) beats one for any user. A (domain, location, user)
// has one owner: a second Add of it fails with ErrTaken, and the first
// keeps it, unless both are members of one load-balancing group (frp's
// loadBalancer.group and groupKey, Rule.Group): then they share it, and
// Lookup takes its members in turn.
package vhost

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrTaken is returned (wrapped) by Router.Add for a domain and location
// another route holds.
var ErrTaken = errors.New("domain already taken")

// ErrGroupKey is returned (wrapped) by Router.Add for a route that names
// the group of a taken domain with another group key.
var ErrGroupKey = errors.New("wrong load-balancing group key")

// Rule is what one route answers for: Domains (host names, lower case,
// optionally "*." and a name), Locations (path prefixes; empty means
// "/"), and User, the basic-auth user of the requests it takes ("" for
// any). Routes with the same Group and GroupKey share their (domain,
// location, user); a route without a Group shares with none.
type Rule struct {
	Domains   []string
	Locations []string
	User      string
	Group     string
	GroupKey  string
}

type routeKey struct{ domain, location, user string }

type entry[T any] struct {
	id   uint64
	name string
	v    T
}

// slot holds the route(s) of one (domain, location, user): one entry, or
// the members of a group, taken in turn from next.
type slot[T any] struct {
	group, groupKey string
	members         []entry[T]
	next            atomic.Uint64
}

func (s *slot[T]) pick() entry[T] {
	if len(s.members) == 1 {
		return s.members[0]
	}
	return s.members[(s.next.Add(1)-1)%uint64(len(s.members))]
}

// Router maps (host, path, user) to values of type T. It is safe for
// concurrent use. The zero value is not ready: use NewRouter.
type Router[T any] struct {
	mu     sync.RWMutex
	next   uint64
	routes map[routeKey]*slot[T]
	byID   map[uint64][]routeKey
	locs   map[hostUser][]string // the locations of routes, longest first
}

type hostUser struct{ domain, user string }

// NewRouter returns an empty router.
func NewRouter[T any]() *Router[T] {
	return &Router[T]{routes: map[routeKey]*slot[T]{}, byID: map[uint64][]routeKey{}, locs: map[hostUser][]string{}}
}

// Add claims every (domain, location) of rule for v, all or nothing, and
// returns the id to Remove them by. name names v in the error another Add
// of the same domain and location gets, which wraps ErrTaken.
func (r *Router[T]) Add(name string, rule Rule, v T) (uint64, error) {
	locs := rule.Locations
	if len(locs) == 0 {
		locs = []string{"/"}
	}
	var keys []routeKey
	for _, d := range rule.Domains {
		for _, l := range locs {
			keys = append(keys, routeKey{strings.ToLower(d), l, rule.User})
		}
	}
	if len(keys) == 0 {
		return 0, errors.New("a route needs at least one domain")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		sl, ok := r.routes[k]
		if !ok {
			continue
		}
		what := fmt.Sprintf("domain %q", k.domain)
		if k.location != "/" {
			what += fmt.Sprintf(" location %q", k.location)
		}
		if k.user != "" {
			what += fmt.Sprintf(" for user %q", k.user)
		}
		switch {
		case sl.group == "" || sl.group != rule.Group:
			by := sl.members[0].name
			if sl.group != "" {
				by = fmt.Sprintf("load-balancing group %q", sl.group)
			}
			return 0, fmt.Errorf("%w: %s is served by %s", ErrTaken, what, by)
		case subtle.ConstantTimeCompare([]byte(sl.groupKey), []byte(rule.GroupKey)) != 1:
			return 0, fmt.Errorf("%w: %s is served by load-balancing group %q, whose groupKey is another", ErrGroupKey, what, sl.group)
		}
	}
	r.next++
	id := r.next
	for _, k := range keys {
		e := entry[T]{id: id, name: name, v: v}
		if sl, ok := r.routes[k]; ok { // a group this route joins
			sl.members = append(sl.members, e)
			continue
		}
		r.routes[k] = &slot[T]{group: rule.Group, groupKey: rule.GroupKey, members: []entry[T]{e}}
		hu := hostUser{k.domain, k.user}
		ls := append(r.locs[hu], k.location)
		slices.SortStableFunc(ls, func(a, b string) int { return len(b) - len(a) })
		r.locs[hu] = ls
	}
	r.byID[id] = keys
	return id, nil
}

// Remove releases the routes Add returned id for; an unknown id is a
// no-op. A group keeps its (domain, location, user) while it has members.
func (r *Router[T]) Remove(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.byID[id] {
		sl, ok := r.routes[k]
		if !ok {
			continue
		}
		sl.members = slices.DeleteFunc(sl.members, func(e entry[T]) bool { return e.id == id })
		if len(sl.members) > 0 {
			continue
		}
		delete(r.routes, k)
		hu := hostUser{k.domain, k.user}
		ls := slices.DeleteFunc(r.locs[hu], func(l string) bool { return l == k.location })
		if len(ls) == 0 {
			delete(r.locs, hu)
		} else {
			r.locs[hu] = ls
		}
	}
	delete(r.byID, id)
}

// Len is the number of (domain, location, user) routes; a group's counts
// once.
func (r *Router[T]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.routes)
}

// Lookup returns the value for a request to host (a port, if any, is
// ignored; case does not matter) with URL path path by basic-auth user
// user ("" when it sent none).
func (r *Router[T]) Lookup(host, path, user string) (v T, ok bool) {
	host = normalizeHost(host)
	if host == "" {
		return v, false
	}
	if path == "" {
		path = "/"
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, d := range candidates(host) {
		users := []string{""}
		if user != "" {
			users = []string{user, ""}
		}
		for _, u := range users {
			if e, ok := r.longest(d, path, u); ok {
				return e.v, true
			}
		}
	}
	return v, false
}

// longest finds the route of domain d and user u with the longest
// location that prefixes path.
func (r *Router[T]) longest(d, path, u string) (entry[T], bool) {
	for _, l := range r.locs[hostUser{d, u}] {
		if strings.HasPrefix(path, l) {
			return r.routes[routeKey{d, l, u}].pick(), true
		}
	}
	return entry[T]{}, false
}

// candidates lists the domains that match host, most specific first:
// host itself, then "*." and each of its parent domains.
func candidates(host string) []string {
	out := []string{host}
	for rest := host; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		out = append(out, "*."+rest)
	}
	return out
}

// normalizeHost drops the port and a trailing dot and lowers the case.
func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
