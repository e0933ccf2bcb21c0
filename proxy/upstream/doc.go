// Package upstream is Postern's side of the conversation with the internal
// MTA: dialing it (plain, STARTTLS or implicit TLS, AUTH, XCLIENT), one
// SMTP transaction at a time on a Conn that owns its socket, a small pool
// of idle connections, and the Copier that puts a client's message on the
// wire (Received header first, dot-stuffing, the SMTP smuggling guard,
// header stripping), as one BDAT LAST chunk when it is small and the
// upstream offers CHUNKING (bdat.go).
//
// It answers with errors and the upstream's own replies; the client's
// replies are proxy's. It must never import proxy, policy or limits.
package upstream
