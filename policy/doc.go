// Package policy is what Postern checks and writes about a message, as
// plain functions of their inputs: envelope addresses (RFC 5321 parsing and
// re-quoting), the sender-login map (who may send as whom), the From: and
// Sender: header check, the Received header, and the networks of
// --mynetworks and --proxy-protocol-from (and the unit a client address is
// counted in).
//
// It owns no connection and no counter. It must never import proxy,
// limits, auth, go-smtp or anything that does network I/O: the SMTP side
// (proxy) calls it, and so does limits (the limit file keys logins like the
// sender map), never the other way round.
package policy
