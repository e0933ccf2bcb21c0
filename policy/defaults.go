package policy

// The defaults of the policy's modes, declared once: cmd/postern's flags
// show them, and proxy.New falls back to DefaultReceivedMode when its
// Config leaves the mode unset (the zero HeaderFromMode is off).
const (
	DefaultReceivedMode   = ReceivedAnonymous
	DefaultHeaderFromMode = HeaderFromOff
)
