package config

// checkPrometheus reports enablePrometheus without a web server to serve
// /metrics on: port is webServer.port of the same side.
func checkPrometheus(r *reporter, enabled bool, port int) {
	if enabled && port == 0 {
		r.add("enablePrometheus", "is true but webServer.port is not set: /metrics is served by the web server; set webServer.port (e.g. 7500) or remove enablePrometheus")
	}
}
