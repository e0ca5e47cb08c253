package config

import (
	"testing"
	"time"
)

const p2pVisitor = "[[visitors]]\nname = \"a\"\ntype = \"xtcp\"\nserverName = \"ssh\"\nsecretKey = \"0123456789\"\nbindPort = 6000\n"

// p2plifeClientCases: keepaliveInterval = "auto" of P2P visitors.
var p2plifeClientCases = []errorCase{
	{name: "p2p keepalive auto", toml: tokenLine + p2pVisitor + "keepaliveInterval = \"auto\"\n"},
	{name: "p2p keepalive auto with timeout", toml: tokenLine + p2pVisitor + "keepaliveInterval = \"auto\"\nkeepaliveTimeout = \"6s\"\n"},
	{name: "p2p keepalive auto timeout too short", toml: tokenLine + p2pVisitor + "keepaliveInterval = \"auto\"\nkeepaliveTimeout = \"5s\"\n",
		want: "hopc.toml:9: visitors[0].keepaliveTimeout: 5s is too short for keepaliveInterval = \"auto\", which starts at 2s until it has learnt the NAT's UDP timeout and then uses at most half the timeout; set keepaliveTimeout to at least \"6s\""},
	{name: "p2p keepalive Auto", toml: tokenLine + p2pVisitor + "keepaliveInterval = \"Auto\"\n",
		want: "hopc.toml:8: visitors[0].keepaliveInterval: \"Auto\" is not a valid duration; write a number with a unit, e.g. \"10s\", \"500ms\" or \"1m30s\" (units: ms, s, m, h)"},
	{name: "p2p keepalive auto on stcp", toml: tokenLine + "[[visitors]]\nname = \"a\"\ntype = \"stcp\"\nserverName = \"db\"\nsecretKey = \"0123456789\"\nbindPort = 6000\nkeepaliveInterval = \"auto\"\n",
		want: "hopc.toml:8: visitors[0].keepaliveInterval: only xtcp and xudp visitors take keepaliveInterval, since stcp always goes through hops; remove it from this stcp visitor"},
	{name: "p2p keepaliveTimeout auto", toml: tokenLine + p2pVisitor + "keepaliveTimeout = \"auto\"\n",
		want: "hopc.toml:8: visitors[0].keepaliveTimeout: \"auto\" is not a valid duration; write a number with a unit, e.g. \"10s\", \"500ms\" or \"1m30s\" (units: ms, s, m, h)"},
}

func TestParseP2PKeepaliveAuto(t *testing.T) {
	for _, c := range p2plifeClientCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseClient("hopc.toml", []byte(c.toml))
			checkErr(t, "hopc.toml", err, c.want)
			if err == nil {
				if verr := cfg.Validate(); verr != nil {
					t.Errorf("parsed config fails Validate: %v", verr)
				}
			}
		})
	}
	cfg, err := ParseClient("hopc.toml", []byte(tokenLine+p2pVisitor+"keepaliveInterval = \"auto\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Visitors[0]
	if !v.KeepaliveInterval.Auto || v.KeepaliveTimeout.Duration != 30*time.Second {
		t.Errorf("keepaliveInterval %+v, keepaliveTimeout %v; want auto and the default 30s", v.KeepaliveInterval, v.KeepaliveTimeout)
	}
	cfg, err = ParseClient("hopc.toml", []byte(tokenLine+p2pVisitor))
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Visitors[0]; v.KeepaliveInterval.Auto || v.KeepaliveInterval.Duration != DefaultP2PKeepaliveInterval {
		t.Errorf("default keepaliveInterval %+v, want %v", v.KeepaliveInterval, DefaultP2PKeepaliveInterval)
	}
}
