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
// keeps it.
package vhost

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
)

// ErrTaken is returned (wrapped) by Router.Add for a domain and location
// another route holds.
var ErrTaken = errors.New("domain already taken")

// Rule is what one route answers for: Domains (host names, lower case,
// optionally "*." and a name), Locations (path prefixes; empty means
// "/"), and User, the basic-auth user of the requests it takes ("" for
// any).
type Rule struct {
	Domains   []string
	Locations []string
	User      string
}

type routeKey struct{ domain, location, user string }

type entry[T any] struct {
	id   uint64
	name string
	v    T
}

// Router maps (host, path, user) to values of type T. It is safe for
// concurrent use. The zero value is not ready: use NewRouter.
type Router[T any] struct {
	mu     sync.RWMutex
	next   uint64
	routes map[routeKey]entry[T]
	byID   map[uint64][]routeKey
	locs   map[hostUser][]string // the locations of routes, longest first
}

type hostUser struct{ domain, user string }

// NewRouter returns an empty router.
func NewRouter[T any]() *Router[T] {
	return &Router[T]{routes: map[routeKey]entry[T]{}, byID: map[uint64][]routeKey{}, locs: map[hostUser][]string{}}
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
		if e, ok := r.routes[k]; ok {
			what := fmt.Sprintf("domain %q", k.domain)
			if k.location != "/" {
				what += fmt.Sprintf(" location %q", k.location)
			}
			if k.user != "" {
				what += fmt.Sprintf(" for user %q", k.user)
			}
			return 0, fmt.Errorf("%w: %s is served by %s", ErrTaken, what, e.name)
		}
	}
	r.next++
	id := r.next
	for _, k := range keys {
		r.routes[k] = entry[T]{id: id, name: name, v: v}
		hu := hostUser{k.domain, k.user}
		ls := append(r.locs[hu], k.location)
		slices.SortStableFunc(ls, func(a, b string) int { return len(b) - len(a) })
		r.locs[hu] = ls
	}
	r.byID[id] = keys
	return id, nil
}

// Remove releases the routes Add returned id for; an unknown id is a
// no-op.
func (r *Router[T]) Remove(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.byID[id] {
		if r.routes[k].id != id {
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

// Len is the number of (domain, location, user) routes.
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
			return r.routes[routeKey{d, l, u}], true
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
