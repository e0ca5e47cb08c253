package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string with a unit:
// "10s", "500ms", "1m30s", "0s". A number without a unit is rejected, so that
// 15 can never silently mean 15ns. The keys that hop can tune by itself
// (heartbeat.interval) also take "auto": Auto is then set and Duration is
// 0; every other key refuses it.
type Duration struct {
	time.Duration
	Auto bool
}

// AutoDuration is the Duration "auto".
var AutoDuration = Duration{Auto: true}

// Dur returns d as a Duration, for configs built in code.
func Dur(d time.Duration) Duration { return Duration{Duration: d} }

// MarshalText writes d in the form UnmarshalText reads, e.g. "1m30s", "0s"
// or "auto".
func (d Duration) MarshalText() ([]byte, error) {
	if d.Auto {
		return []byte("auto"), nil
	}
	return []byte(formatDuration(d.Duration)), nil
}

// UnmarshalText parses a duration with a unit, such as "10s" or "500ms",
// or "auto" (config files are checked key by key by Parse, which takes
// "auto" only where it means something).
func (d *Duration) UnmarshalText(b []byte) error {
	if string(b) == "auto" {
		*d = AutoDuration
		return nil
	}
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Dur(v)
	return nil
}

const durationUnits = "units: ms, s, m, h"

// parseDuration parses s like time.ParseDuration but requires a unit, and
// phrases its errors as advice for someone editing a config file.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf(`empty duration; write a number with a unit, e.g. "10s" (%s)`, durationUnits)
	}
	if isNumber(s) {
		return 0, fmt.Errorf(`%q has no unit; add one, e.g. "%ss" (%s)`, s, s, durationUnits)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`%q is not a valid duration; write a number with a unit, e.g. "10s", "500ms" or "1m30s" (%s)`, s, durationUnits)
	}
	return v, nil
}

// isNumber reports whether s is a plain decimal number such as "10", "-3"
// or "1.5": a duration missing its unit.
func isNumber(s string) bool {
	if s == "" || strings.Trim(s, "+-.0123456789") != "" {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// formatDuration is time.Duration.String without the trailing zero units
// ("1m" rather than "1m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
