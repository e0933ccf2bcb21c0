package usersfile

// The users file's bounds and the parameters of new hashes, in one place.

// maxUsersLine bounds one line of a users file; real lines are < 300 bytes.
const maxUsersLine = 64 << 10

// maxPasswordLen bounds the password Authenticate will hash. SHA-crypt's
// work grows with the password length times the rounds, so a client could
// otherwise buy seconds of CPU per attempt with a long AUTH line. Longer
// passwords are refused before the login is looked up, so the refusal says
// nothing about which logins exist.
const maxPasswordLen = 1024

// Parameters of the hashes HashPassword writes. bcrypt cost 10 takes about
// 50 ms; argon2id m=64 MiB, t=3, p=1 matches Dovecot's (libsodium's
// "moderate") output, so files mixing both tools stay uniform in cost.
const (
	newBcryptCost      = 10
	bcryptMaxPassword  = 72
	newArgon2MemoryKiB = 64 << 10
	newArgon2Time      = 3
	newArgon2Threads   = 1
	newArgon2SaltLen   = 16
	newArgon2TagLen    = 32
)
