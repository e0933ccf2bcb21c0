//go:build !linux

package proxy

// canSeeHangup: without TCP_INFO a hang-up during AUTH's delay is seen
// only once the delay ends; shutdown still ends it at once.
const canSeeHangup = false

func peerGone(uintptr) bool { return false }
