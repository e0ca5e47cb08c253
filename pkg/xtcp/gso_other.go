//go:build !linux

package xtcp

func gsoOOB(int) []byte { return nil }

const gsoSupported = false
