package dovecot

import "time"

// DefaultService is sent as service= when Options leaves it empty.
const DefaultService = "smtp"

// DefaultTimeout bounds one request when Options leaves Timeout at 0.
// Dovecot delays FAILs for addresses with recent failures
// (auth_failure_delay and its penalty, up to 15 s, plus 2 s), and a delayed
// FAIL must still count as a wrong password, not turn into
// auth.ErrUnavailable.
const DefaultTimeout = 20 * time.Second
