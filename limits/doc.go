// Package limits is Postern's abuse accounting: the AUTH lockout (per
// client address, and the per-login delay), the per-login sending limits
// and the limit file, suspensions, and the alerts they raise (log line and
// webhook). The counters live in limits/state: this process's memory, or
// Redis shared by replicas.
//
// It decides, and never speaks SMTP: a refusal is an error value
// (ErrLimitReached) or a boolean, and the SMTP side (proxy) picks the reply
// text. It must never import proxy, go-smtp or auth; it may import policy
// (logins in the limit file are keyed like the sender map) and limits/state.
package limits
