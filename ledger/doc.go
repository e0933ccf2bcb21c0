// Package ledger holds the fault ledger (issue 21, part 3): a test, not a
// library. It runs three replicas of the built binary behind HAProxy (PROXY
// v2), sharing a redis-server, in front of two Postfix instances; a client
// that behaves like a mail client sends numbered messages while a fault
// script on a fixed seed kills, drains, reloads and pauses the parts; then
// every message is accounted for: each one the client was told 250 for is
// in exactly one mailbox, and every other copy is explained by a log line.
//
// `make ledger` runs it at a larger size (LEDGER_N); `make test` runs the
// FAST size. See CONTRIBUTING.md.
package ledger
