package ldap

import "time"

// The defaults New fills in where Config leaves a field empty.

// DefaultLoginAttribute is the attribute whose first value is an LDAP
// account's canonical identity (auth.Result.Login) when Config leaves it
// empty: the entry's primary mail address.
const DefaultLoginAttribute = "mail"

// DefaultFilter finds the user's entry by its mail address.
const DefaultFilter = "(mail=%u)"

// DefaultMailAttribute holds the address an entry owns.
const DefaultMailAttribute = "mail"

// DefaultTimeout bounds one whole verification (dial, search, bind).
const DefaultTimeout = 10 * time.Second
