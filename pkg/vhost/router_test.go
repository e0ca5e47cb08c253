package vhost

import (
	"errors"
	"strings"
	"testing"
)

func TestRouterMatching(t *testing.T) {
	r := NewRouter[string]()
	add := func(name string, rule Rule) {
		t.Helper()
		if _, err := r.Add(name, rule, name); err != nil {
			t.Fatal(err)
		}
	}
	add("exact", Rule{Domains: []string{"a.example.com"}})
	add("api", Rule{Domains: []string{"a.example.com"}, Locations: []string{"/api", "/api/v2"}})
	add("apiv3", Rule{Domains: []string{"a.example.com"}, Locations: []string{"/api/v3"}})
	add("wild", Rule{Domains: []string{"*.example.com"}})
	add("wild-b", Rule{Domains: []string{"*.b.example.com"}})
	add("alice", Rule{Domains: []string{"a.example.com"}, User: "alice"})
	for _, c := range []struct{ host, path, user, want string }{
		{"a.example.com", "/", "", "exact"},
		{"A.Example.COM:8080", "/x", "", "exact"},
		{"a.example.com.", "/", "", "exact"},
		{"a.example.com", "/api", "", "api"},
		{"a.example.com", "/apix", "", "api"}, // frp: a plain prefix
		{"a.example.com", "/api/v2/x", "", "api"},
		{"a.example.com", "/api/v3/x", "", "apiv3"},
		{"a.example.com", "/", "alice", "alice"},
		{"a.example.com", "/api", "alice", "alice"}, // a route for the user beats a longer location for anyone
		{"a.example.com", "/api", "bob", "api"},
		{"z.example.com", "/", "", "wild"},
		{"x.y.example.com", "/", "", "wild"},
		{"c.b.example.com", "/", "", "wild-b"},
		{"b.example.com", "/", "", "wild"},
		{"example.com", "/", "", ""},
		{"other.org", "/", "", ""},
		{"", "/", "", ""},
	} {
		got, ok := r.Lookup(c.host, c.path, c.user)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("Lookup(%q, %q, %q) = %q, %v; want %q", c.host, c.path, c.user, got, ok, c.want)
		}
	}
}

func TestRouterConflictsAndRemove(t *testing.T) {
	r := NewRouter[string]()
	id1, err := r.Add("first", Rule{Domains: []string{"a.example.com", "b.example.com"}, Locations: []string{"/", "/x"}}, "first")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Add("second", Rule{Domains: []string{"c.example.com", "b.example.com"}, Locations: []string{"/x"}}, "second")
	if !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), `domain "b.example.com" location "/x" is served by first`) {
		t.Fatalf("second Add: %v", err)
	}
	if _, ok := r.Lookup("c.example.com", "/", ""); ok {
		t.Fatal("a failed Add left a route behind")
	}
	if got, _ := r.Lookup("b.example.com", "/x", ""); got != "first" {
		t.Fatalf("the first lost its route: %q", got)
	}
	if _, err := r.Add("other-loc", Rule{Domains: []string{"b.example.com"}, Locations: []string{"/y"}}, "other-loc"); err != nil {
		t.Fatalf("another location of the same domain: %v", err)
	}
	if _, err := r.Add("user", Rule{Domains: []string{"b.example.com"}, User: "u"}, "user"); err != nil {
		t.Fatalf("the same domain for one user: %v", err)
	}
	if _, err := r.Add("none", Rule{}, "none"); err == nil {
		t.Fatal("a rule without domains was accepted")
	}
	r.Remove(id1)
	r.Remove(id1)
	r.Remove(12345)
	if _, ok := r.Lookup("a.example.com", "/", ""); ok {
		t.Fatal("route still there after Remove")
	}
	if got, _ := r.Lookup("b.example.com", "/y", ""); got != "other-loc" {
		t.Fatalf("Remove took another route: %q", got)
	}
	if n := r.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if _, err := r.Add("second", Rule{Domains: []string{"b.example.com"}, Locations: []string{"/x"}}, "second"); err != nil {
		t.Fatalf("after Remove the domain is free: %v", err)
	}
}

// Members of one group share a domain and are taken in turn; another
// group, a wrong key or a route without a group is refused; the domain
// stays while a member is left.
func TestRouterGroups(t *testing.T) {
	r := NewRouter[string]()
	web := Rule{Domains: []string{"web.example.com"}, Group: "web", GroupKey: "k"}
	a, err := r.Add("a", web, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add("b", web, "b"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 10 {
		v, ok := r.Lookup("web.example.com", "/", "")
		if !ok {
			t.Fatal("no route")
		}
		seen[v]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("10 lookups went %v; want 5 each", seen)
	}
	for _, c := range []struct {
		rule Rule
		want error
		msg  string
	}{
		{Rule{Domains: web.Domains}, ErrTaken, `served by load-balancing group "web"`},
		{Rule{Domains: web.Domains, Group: "other", GroupKey: "k"}, ErrTaken, `served by load-balancing group "web"`},
		{Rule{Domains: web.Domains, Group: "web", GroupKey: "x"}, ErrGroupKey, "whose groupKey is another"},
	} {
		_, err := r.Add("c", c.rule, "c")
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Add(%+v) = %v; want %v with %q", c.rule, err, c.want, c.msg)
		}
	}
	solo, err := r.Add("solo", Rule{Domains: []string{"solo.example.com"}}, "solo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add("g", Rule{Domains: []string{"solo.example.com"}, Group: "web", GroupKey: "k"}, "g"); !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "served by solo") {
		t.Errorf("a group member on a route without a group: %v", err)
	}
	r.Remove(solo)
	r.Remove(a)
	for range 3 {
		if v, _ := r.Lookup("web.example.com", "/", ""); v != "b" {
			t.Fatalf("after a left: %q, want b", v)
		}
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d, want 1", r.Len())
	}
}
