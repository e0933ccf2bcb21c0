// Package listen is Postern's client-facing sockets up to the hand-off to
// the SMTP server: the --listen specifications (mode, address, public
// port) and the listener names used in logs and metrics, strict ALPN on
// the implicit-TLS listeners, the shared TLS+HTTPS listener that shakes
// hands and hands each connection to SMTP or to HTTP (by ALPN, server name
// or who speaks first), and the connection caps: the SMTP listeners' total
// and per-network counts (ConnLimits) and the budgets of the listeners that
// are not SMTP's (ConnBudget).
//
// It knows nothing of SMTP sessions: proxy, its only SMTP user, hands the
// shared listener what it needs through SharedServer (a hook that adopts a
// connection that chose SMTP) and counts its own connections in ConnLimits.
// It must never import proxy, proxy/upstream, limits, auth, certs or cmd;
// of Postern's packages it imports policy alone (client networks).
package listen
