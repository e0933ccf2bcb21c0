package main

import (
	"fmt"
	"strings"
)

// The client shapes of the generator (--shape): how a session writes its
// commands and its message. Every shape writes the message with its final
// dot through one buffer; they differ in what waits for what.
const (
	// shapeWaiting is go-smtp's client (the default): each command in its
	// own write, a wait for each reply, the message with its final dot in
	// one write (go-smtp patch 0005's 64 KiB buffer). This is what most
	// MUAs' SMTP libraries do.
	shapeWaiting = "waiting"
	// shapeSerial is the same on the wire as shapeWaiting from the raw
	// client, independent of go-smtp's client code: a cross-check, and the
	// shape of a plain hand-written client.
	shapeSerial = "serial"
	// shapePipelining sends MAIL, RCPT and DATA in one write (RFC 2920),
	// then the message with its final dot in one write (Thunderbird,
	// Postfix and Exim as clients).
	shapePipelining = "pipelining"
	// shapeDotApart waits for each reply like shapeWaiting but writes the
	// final ".\r\n" in a write of its own after the message (Go's net/smtp
	// for a message that fills its 4 KiB buffer, JavaMail).
	shapeDotApart = "dot-apart"
)

// shapes lists the shapes with the sentence the report prints for each.
var shapes = []struct{ name, desc string }{
	{shapeWaiting, "each command in one write and a wait for its reply, the message with its final dot in one write (go-smtp's client, like most MUAs' SMTP libraries)"},
	{shapePipelining, "MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING), then the message with its final dot in one write (like Thunderbird, or Postfix as a client)"},
	{shapeSerial, "each command in one write and a wait for its reply, the message with its final dot in one write (the raw client: shape `waiting` without go-smtp's client code)"},
	{shapeDotApart, "each command in one write and a wait for its reply, the message in one write and its final dot in another (like Go's net/smtp or JavaMail)"},
}

// shapeDesc is the report's sentence for a shape ("" when unknown).
func shapeDesc(name string) string {
	for _, s := range shapes {
		if s.name == name {
			return s.desc
		}
	}
	return ""
}

func shapeNames() string {
	var n []string
	for _, s := range shapes {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// checkShape accepts the shape names above.
func checkShape(name string) error {
	if shapeDesc(name) == "" {
		return fmt.Errorf("--shape must be one of %s, not %q", shapeNames(), name)
	}
	return nil
}
