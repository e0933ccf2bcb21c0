package smtp

import (
	"crypto/tls"
	"runtime"
)

// handshake runs the TLS handshake of a connection on a goroutine of its
// own and waits for it. The handshake's cryptography (key exchange,
// certificate signature) needs a deep stack; run on the connection's
// goroutine, it would leave that goroutine's stack grown for as long as the
// connection lives, idle or not: the runtime shrinks a stack only during a
// garbage collection, by half at a time. A panic in the handshake is
// raised again on the caller's goroutine, where it was raised before; so is
// a runtime.Goexit (and a panic(nil) under GODEBUG panicnil=1, which
// recover cannot tell from it): the caller must never wait on done forever.
func handshake(tc *tls.Conn) error {
	type result struct {
		err      error
		panicked bool // the handshake did not return: p, or Goexit
		p        interface{}
	}
	done := make(chan result, 1)
	go func() {
		returned := false
		defer func() {
			if !returned {
				done <- result{panicked: true, p: recover()}
			}
		}()
		err := tc.Handshake()
		returned = true
		done <- result{err: err}
	}()
	r := <-done
	if r.panicked {
		if r.p == nil {
			runtime.Goexit() // runs the caller's defers: the connection ends
		}
		panic(r.p)
	}
	return r.err
}
