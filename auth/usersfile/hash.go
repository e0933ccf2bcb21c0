package usersfile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
)

// ErrUnsupportedHash means a stored password hash is in a scheme or format
// Postern does not verify, or is malformed. Its messages name the scheme but
// never include the hash itself.
var ErrUnsupportedHash = errors.New("unsupported or malformed password hash")

// ErrUnknownScheme is wrapped, along with ErrUnsupportedHash, by the errors
// for a hash in a scheme Postern does not verify at all (Dovecot's {OTP},
// yescrypt "$y$", a typo in the scheme name), as opposed to a malformed hash
// in a scheme it does verify. The users file skips such an entry instead of
// refusing to load.
var ErrUnknownScheme = errors.New("scheme not verified by Postern")

// unknownScheme builds an error wrapping both sentinels.
func unknownScheme(format string, args ...any) error {
	return fmt.Errorf("%w: %s (%w)", ErrUnsupportedHash, fmt.Sprintf(format, args...), ErrUnknownScheme)
}

// parsedHash is a stored hash that passed validation, ready to verify.
type parsedHash struct {
	// scheme names the algorithm in Dovecot's terms ("BLF-CRYPT", "SSHA512",
	// "MD5-CRYPT" for a {CRYPT}$1$ hash): a bounded set, safe for logs and
	// metric labels. It never contains the hash.
	scheme string
	// weak is set for schemes that are not a salted, deliberately slow hash
	// (clear text, single MD5/SHA digests, DES and MD5 crypt, CRAM-MD5): a
	// stolen users file gives those passwords away in hours.
	weak bool
	// costClass names the algorithm and its cost parameters (not the salt),
	// e.g. "bcrypt cost=10": two hashes of one class take the same time to
	// verify. The users file picks its dummy hash by it.
	costClass string
	// check derives the password's hash and compares it in constant time.
	check func(password string) (bool, error)
}

// verify reports whether password matches. A password containing NUL never
// does: RFC 4616 forbids it, crypt(3) and Dovecot end a password at the
// first NUL, and zero-padded keys (HMAC in CRAM-MD5, PBKDF2 and SCRAM; DES)
// cannot tell "secret" from "secret\x00", so such a password is refused
// here, for every scheme, before anything is compared.
func (h parsedHash) verify(password string) (bool, error) {
	if strings.IndexByte(password, 0) >= 0 {
		return false, nil
	}
	return h.check(password)
}

// VerifyPassword reports whether password matches hash: a crypt(3) string
// (bcrypt, SHA-crypt, MD5-crypt, Apache $apr1$, DES, argon2) or any
// Dovecot "{SCHEME}" hash Postern verifies (see dovecotSchemes). DIGEST-MD5
// needs the login and so is only verified from a users file. A hash it
// cannot verify is an error wrapping ErrUnsupportedHash, never a silent
// false.
func VerifyPassword(hash, password string) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	return h.verify(password)
}

// parseHash is parseHashFor without a login.
func parseHash(hash string) (parsedHash, error) { return parseHashFor(hash, "") }

// parseHashFor checks a stored hash and prepares its verification. A hash
// without a "{SCHEME}" prefix is a crypt(3) string, which is what Dovecot
// assumes for passwd-files and what htpasswd writes. login is the user the
// hash belongs to (only DIGEST-MD5 mixes it in). Errors wrap
// ErrUnsupportedHash and never contain the hash.
func parseHashFor(hash, login string) (parsedHash, error) {
	if !strings.HasPrefix(hash, "{") {
		return parseCrypt("", hash)
	}
	end := strings.IndexByte(hash, '}')
	if end < 0 {
		return parsedHash{}, fmt.Errorf("%w: scheme prefix has no closing brace", ErrUnsupportedHash)
	}
	return parseDovecot(strings.ToUpper(hash[1:end]), hash[end+1:], login)
}

// HashPassword hashes password for a users file, in Dovecot's notation:
// scheme "BLF-CRYPT" gives "{BLF-CRYPT}$2y$10$...", "ARGON2ID" gives
// "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$...". The scheme name is
// case-insensitive and may be written with its braces.
func HashPassword(password, scheme string) (string, error) {
	if password == "" {
		return "", errors.New("hashing password: the password is empty")
	}
	name := strings.ToUpper(strings.TrimSuffix(strings.TrimPrefix(scheme, "{"), "}"))
	switch name {
	case "BLF-CRYPT":
		// bcrypt ignores bytes past 72; refuse rather than silently truncate.
		if len(password) > bcryptMaxPassword {
			return "", fmt.Errorf("hashing password with BLF-CRYPT: bcrypt uses at most %d bytes of a password, this one has %d (use ARGON2ID)",
				bcryptMaxPassword, len(password))
		}
		hasher, err := bcrypt.New(bcrypt.WithVariant(bcrypt.VariantStandard), bcrypt.WithCost(newBcryptCost))
		if err != nil {
			return "", fmt.Errorf("hashing password with BLF-CRYPT: %w", err)
		}
		digest, err := hasher.Hash(password)
		if err != nil {
			return "", fmt.Errorf("hashing password with BLF-CRYPT: %w", err)
		}
		// go-crypt writes $2b$; Dovecot and htpasswd write $2y$. Both name the
		// same, correct algorithm; $2y$ keeps files uniform.
		encoded, ok := strings.CutPrefix(digest.Encode(), "$2b$")
		if !ok {
			return "", errors.New("hashing password with BLF-CRYPT: unexpected encoding from go-crypt")
		}
		return "{BLF-CRYPT}$2y$" + encoded, nil
	case "ARGON2ID":
		hasher, err := argon2.New(argon2.WithVariantID(), argon2.WithM(newArgon2MemoryKiB), argon2.WithT(newArgon2Time),
			argon2.WithP(newArgon2Threads), argon2.WithS(newArgon2SaltLen), argon2.WithK(newArgon2TagLen))
		if err != nil {
			return "", fmt.Errorf("hashing password with ARGON2ID: %w", err)
		}
		digest, err := hasher.Hash(password)
		if err != nil {
			return "", fmt.Errorf("hashing password with ARGON2ID: %w", err)
		}
		return "{ARGON2ID}" + digest.Encode(), nil
	}
	return "", fmt.Errorf("hashing password: scheme %q is not offered (use BLF-CRYPT or ARGON2ID)", printableName(name))
}
