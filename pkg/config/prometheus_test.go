package config

import "testing"

func TestEnablePrometheus(t *testing.T) {
	_, err := ParseServer("hops.toml", []byte(tokenLine+"enablePrometheus = true\n"))
	checkErr(t, "hops.toml", err, "hops.toml:2: enablePrometheus: is true but webServer.port is not set: /metrics is served by the web server; set webServer.port (e.g. 7500) or remove enablePrometheus")

	srv, err := ParseServer("hops.toml", []byte(tokenLine+"enablePrometheus = true\n[webServer]\nport = 7500\n"))
	checkErr(t, "hops.toml", err, "")
	if !srv.EnablePrometheus {
		t.Errorf("server EnablePrometheus = false after enablePrometheus = true")
	}
	if srv, _ := ParseServer("hops.toml", []byte(tokenLine)); srv.EnablePrometheus {
		t.Errorf("server EnablePrometheus defaults to true")
	}

	_, err = ParseClient("hopc.toml", []byte(tokenLine+"enablePrometheus = true\n"))
	checkErr(t, "hopc.toml", err, "hopc.toml:2: enablePrometheus: is true but webServer.port is not set: /metrics is served by the web server; set webServer.port (e.g. 7500) or remove enablePrometheus")
	cli, err := ParseClient("hopc.toml", []byte(tokenLine+"enablePrometheus = true\n[webServer]\nport = 7400\n"))
	checkErr(t, "hopc.toml", err, "")
	if !cli.EnablePrometheus {
		t.Errorf("client EnablePrometheus = false after enablePrometheus = true")
	}
	_, err = ParseClient("hopc.toml", []byte(tokenLine+"enablePrometheus = \"yes\"\n"))
	if err == nil {
		t.Errorf("enablePrometheus = \"yes\" accepted; want a type error")
	}
}
