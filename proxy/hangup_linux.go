package proxy

import "golang.org/x/sys/unix"

// canSeeHangup: peerGone asks the kernel (TCP_INFO).
const canSeeHangup = true

// peerGone reports whether the peer of the TCP socket fd has ended the
// connection: its FIN arrived (CLOSE_WAIT) or a reset closed it (CLOSE).
// Only an ESTABLISHED socket can still carry the client's next command; a
// client that merely half-closed could not send one either. An fd the
// kernel cannot describe counts as gone: nothing more can be done with it.
func peerGone(fd uintptr) bool {
	info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	return err != nil || info.State != unix.BPF_TCP_ESTABLISHED
}
