package smtp

import "crypto/tls"

// handshake runs the TLS handshake of a connection on a goroutine of its
// own and waits for it. The handshake's cryptography (key exchange,
// certificate signature) needs a deep stack; run on the connection's
// goroutine, it would leave that goroutine's stack grown for as long as the
// connection lives, idle or not: the runtime shrinks a stack only during a
// garbage collection, by half at a time. A panic in the handshake is
// raised again on the caller's goroutine, where it was raised before.
func handshake(tc *tls.Conn) error {
	type result struct {
		err error
		p   interface{}
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{p: p}
			}
		}()
		done <- result{err: tc.Handshake()}
	}()
	r := <-done
	if r.p != nil {
		panic(r.p)
	}
	return r.err
}
