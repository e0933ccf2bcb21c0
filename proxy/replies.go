package proxy

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// Every reply Postern itself sends, declared once (DESIGN.md "Protocol
// behaviour"). They are returned to go-smtp unwrapped: it picks the code by a
// type assertion on *smtp.SMTPError, not errors.As, so a wrapped reply would
// lose its code. The protocol replies go-smtp writes itself (501 5.5.2
// "Invalid base64 data" for an AUTH response, 501 5.0.0 "Negotiation
// cancelled" for "*", syntax errors, 500 5.5.6 "Line too long", and the
// replies to commands out of sequence, 503 5.5.1 and 554 5.5.1 "No valid
// recipients" as Postfix gives them, patch server-command-sequence-503) keep go-smtp's wording
// and live there;
// AUTH before TLS gets replyTLSRequired from the session, never go-smtp's
// 523 (the server sets AllowInsecureAuth).
var (
	replyTLSRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
	replyAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	replyAuthInvalid = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid"}
	replyAuthUnavailable = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Temporary authentication failure, try again later"}
	replyAuthTooMany = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many authentication failures, closing connection"}
	replyLockedOut = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many authentication failures from your address, try again later"}
	replyAuthMalformed = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Malformed authentication response"}
	replyAuthMechanism = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4},
		Message: "Unsupported authentication mechanism"}
	replySenderNotOwned = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Sender address rejected: not owned by user"}
	replyBadSender = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Bad sender address syntax"}
	replyBadRecipient = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Bad recipient address syntax"}
	replyMessageTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message size exceeds fixed limit"}
	replyBareNewline = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Message contains a bare CR; lines must end with CRLF (RFC 5321 section 2.3.8)"}
	replyDotBareLF = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Message contains a \".\" line next to a bare LF; lines must end with CRLF (RFC 5321 section 2.3.8)"}
	replyNULInMessage = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message contains NUL characters"}
	replyDataTimeout = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Timeout while receiving the message, try again"}
	replyUpstreamUnavailable = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
		Message: "Mail server temporarily unavailable, try again later"}
	replyUpstreamFailed = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Mail server connection lost, message not delivered, try again later"}
	replyTooManyConnections = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many connections"}
	replyLoginTimeout = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Login timeout, closing connection"}
	// go-smtp's Server.Shutdown writes it to idle sessions itself
	// (patch shutdown-421); the session answers a DATA cut by the drain's end with it.
	replyShuttingDown = smtp.ErrShuttingDown
	// (A suspended login hears replyAuthInvalid, and is counted like a
	// wrong password, even with the right one: see errSuspended.)
	replyHeaderFromNotOwned = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "From: header address rejected: not owned by user"}
)

// replyLimitReached is the reply to a MAIL, or to the RCPT that would cross
// the recipient limit, of a login over its sending limit: temporary (4.7.1,
// RFC 3463 "delivery not authorized"), so the client keeps the message and
// retries once the window has room.
func replyLimitReached(login string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
		Message: "Sending limit reached for " + sanitizeLog(login) + ", try again later"}
}

// replyText is a reply as one line on the wire, without the CRLF: the one
// formatter for the replies Postern writes or logs itself.
func replyText(r *smtp.SMTPError) string {
	ec := r.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, ec[0], ec[1], ec[2], r.Message)
}
