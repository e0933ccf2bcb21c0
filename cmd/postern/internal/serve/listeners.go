package serve

import (
	"fmt"
	"net"

	"github.com/postern/postern/cmd/postern/internal/control"
)

// Listeners are every socket `serve` needs, bound before any of them
// serves: a taken port is a start-up error naming the address, never a part
// that quietly does not run while the rest serves. The SMTP listeners are
// held by inst.server (proxy.Server.Listen). A nil field is a listener that
// is not configured.
type Listeners struct {
	metrics net.Listener // --metrics, capped
	https   net.Listener // --listen https=, capped
	// http01 is bound to certs' HTTP01Addr (--acme-http); certs.Manager.Run
	// serves it and applies its own cap (certs.Config.WrapHTTPListener).
	http01  net.Listener
	control net.Listener // --control-socket
}

// Listen checks the open files limit against the connection caps, then
// binds every listener of inst. On an error it closes what it had bound,
// and the error names the listener and its address.
func (inst *Instance) Listen() (*Listeners, error) {
	checkFileLimit(inst.log, inst.fileNeed)
	b, err := inst.bind()
	if err != nil {
		return nil, err
	}
	for _, a := range inst.server.Addrs() {
		inst.log.Info("listening", "addr", a.String())
	}
	if b.https != nil {
		inst.log.Info("listening", "addr", b.https.Addr().String(), "serves", "autoconfig https")
	}
	return b, nil
}

func (inst *Instance) bind() (*Listeners, error) {
	b := &Listeners{}
	var err error
	if addr := inst.metrics; addr != "" {
		if b.metrics, err = listenTCP("metrics listener", addr); err != nil {
			return nil, err
		}
		b.metrics = inst.httpCaps.wrap(b.metrics, httpListenerMetrics)
	}
	if inst.httpsAddr != "" {
		if b.https, err = listenTCP("autoconfig HTTPS listener (--listen https=)", inst.httpsAddr); err != nil {
			b.close()
			return nil, err
		}
		b.https = inst.httpCaps.wrap(b.https, httpListenerHTTPS)
	}
	if addr := inst.certs.HTTP01Addr(); addr != "" {
		if b.http01, err = listenTCP("ACME HTTP-01 listener (--acme-http)", addr); err != nil {
			b.close()
			return nil, err
		}
	}
	if b.control, err = control.Listen(inst.control.path, inst.control.explicit, inst.log); err != nil {
		b.close()
		return nil, err
	}
	// Last, as proxy.Server offers no way to close them again; Listen
	// closes its own on an error.
	if err := inst.server.Listen(); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func listenTCP(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", what, addr, err)
	}
	return ln, nil
}

// close closes every listener bound so far (a control socket's file goes
// with it).
func (b *Listeners) close() {
	for _, ln := range []net.Listener{b.metrics, b.https, b.http01, b.control} {
		if ln != nil {
			ln.Close()
		}
	}
}
