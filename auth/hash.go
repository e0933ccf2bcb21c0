package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"
)

// ErrUnsupportedHash means a stored password hash is in a scheme or format
// Postern does not verify, or is malformed. Its messages name the scheme but
// never include the hash itself.
var ErrUnsupportedHash = errors.New("unsupported or malformed password hash")

// hashKind is one of the password-hash algorithms Postern verifies.
type hashKind int

const (
	kindBcrypt hashKind = iota + 1
	kindSHA256Crypt
	kindSHA512Crypt
	kindArgon2id
)

func (k hashKind) String() string {
	switch k {
	case kindBcrypt:
		return "bcrypt"
	case kindSHA256Crypt:
		return "SHA256-crypt"
	case kindSHA512Crypt:
		return "SHA512-crypt"
	case kindArgon2id:
		return "argon2id"
	}
	return "unknown"
}

// Bounds on the cost parameters a stored hash may ask for. The crypt formats
// allow absurd values (bcrypt cost 31 runs for hours, argon2id m=2^32 KiB
// asks for 4 TiB), and every login attempt pays the stored cost, so a typo in
// the users file must be a load error rather than a self-inflicted DoS.
const (
	bcryptMinCost      = 4
	bcryptMaxCost      = 20 // about 1 min on a current CPU; real files use 5..14
	shaCryptMinRounds  = 1000
	shaCryptMaxRounds  = 10_000_000 // about 4-10 s; glibc allows 999999999
	argon2MaxMemoryKiB = 4 << 20    // 4 GiB
	argon2MaxTime      = 1000
	argon2MaxThreads   = 255
	argon2MaxBytes     = 1024 // decoded salt and tag length
	shaCryptMaxSalt    = 16   // glibc truncates longer salts when hashing
	sha256CryptKeyLen  = 43
	sha512CryptKeyLen  = 86
	bcryptSaltKeyLen   = 53 // 22 salt characters + 31 hash characters
)

// dovecotSchemes maps the Dovecot scheme prefixes Postern accepts to the
// algorithms each may carry. {CRYPT} is libc crypt(3), which knows bcrypt and
// SHA-crypt but not argon2.
var dovecotSchemes = map[string][]hashKind{
	"BLF-CRYPT":    {kindBcrypt},
	"SHA512-CRYPT": {kindSHA512Crypt},
	"SHA256-CRYPT": {kindSHA256Crypt},
	"ARGON2ID":     {kindArgon2id},
	"CRYPT":        {kindBcrypt, kindSHA256Crypt, kindSHA512Crypt},
}

// parsedHash is a stored hash that passed validation, ready to verify.
type parsedHash struct {
	kind hashKind
	// costClass names the algorithm and its cost parameters (not the salt),
	// e.g. "bcrypt cost=10": two hashes of one class take the same time to
	// verify. The users file picks its dummy hash by it.
	costClass string
	digest    algorithm.Digest
}

// verify reports whether password matches. The comparison of the derived key
// is constant-time (go-crypt uses crypto/subtle).
func (h parsedHash) verify(password string) (bool, error) {
	ok, err := h.digest.MatchAdvanced(password)
	if err != nil {
		// go-crypt errors do not quote the hash; they only report key
		// derivation failures, which validation in parseHash rules out.
		return false, fmt.Errorf("verifying %s password: %w", h.kind, err)
	}
	return ok, nil
}

// VerifyPassword reports whether password matches hash, a bcrypt ($2a$, $2b$,
// $2y$), SHA512-crypt ($6$), SHA256-crypt ($5$) or argon2id ($argon2id$)
// string, optionally behind a Dovecot scheme prefix such as {BLF-CRYPT}. A
// hash it cannot verify is an error wrapping ErrUnsupportedHash, never a
// silent false.
func VerifyPassword(hash, password string) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	return h.verify(password)
}

// parseHash strips an optional Dovecot scheme prefix, checks the format and
// cost bounds, and decodes the hash. Errors wrap ErrUnsupportedHash and never
// contain the hash.
func parseHash(hash string) (parsedHash, error) {
	scheme, encoded, err := splitScheme(hash)
	if err != nil {
		return parsedHash{}, err
	}
	kind, err := identifyCrypt(encoded)
	if err != nil {
		return parsedHash{}, err
	}
	if scheme != "" && !schemeAllows(scheme, kind) {
		return parsedHash{}, fmt.Errorf("%w: scheme {%s} does not hold a %s hash", ErrUnsupportedHash, scheme, kind)
	}
	var h parsedHash
	switch kind {
	case kindBcrypt:
		h, err = parseBcrypt(encoded)
	case kindSHA256Crypt, kindSHA512Crypt:
		h, err = parseSHACrypt(kind, encoded)
	case kindArgon2id:
		h, err = parseArgon2id(encoded)
	}
	if err != nil {
		return parsedHash{}, fmt.Errorf("%w: %s: %w", ErrUnsupportedHash, kind, err)
	}
	return h, nil
}

// splitScheme separates a leading "{SCHEME}" (case-insensitive, returned in
// upper case) from the rest. An unknown scheme is an error naming it.
func splitScheme(hash string) (scheme, rest string, err error) {
	if !strings.HasPrefix(hash, "{") {
		return "", hash, nil
	}
	end := strings.IndexByte(hash, '}')
	if end < 0 {
		return "", "", fmt.Errorf("%w: scheme prefix has no closing brace", ErrUnsupportedHash)
	}
	scheme = strings.ToUpper(hash[1:end])
	if _, ok := dovecotSchemes[scheme]; !ok {
		return "", "", fmt.Errorf("%w: password scheme {%s} is not supported (use BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT or ARGON2ID)",
			ErrUnsupportedHash, printableName(scheme))
	}
	return scheme, hash[end+1:], nil
}

func schemeAllows(scheme string, kind hashKind) bool {
	for _, k := range dovecotSchemes[scheme] {
		if k == kind {
			return true
		}
	}
	return false
}

// identifyCrypt reads the "$id$" that starts a modular crypt string.
func identifyCrypt(encoded string) (hashKind, error) {
	if !strings.HasPrefix(encoded, "$") {
		return 0, fmt.Errorf("%w: not a crypt string (expected $2y$, $5$, $6$ or $argon2id$)", ErrUnsupportedHash)
	}
	id, _, found := strings.Cut(encoded[1:], "$")
	if !found {
		return 0, fmt.Errorf("%w: crypt string has no identifier", ErrUnsupportedHash)
	}
	switch id {
	case "2a", "2b", "2y":
		return kindBcrypt, nil
	case "5":
		return kindSHA256Crypt, nil
	case "6":
		return kindSHA512Crypt, nil
	case "argon2id":
		return kindArgon2id, nil
	}
	return 0, fmt.Errorf("%w: hash type $%s$ is not supported (expected $2y$, $5$, $6$ or $argon2id$)",
		ErrUnsupportedHash, printableName(id))
}

// parseBcrypt accepts "$2y$NN$" followed by the 53-character salt and hash.
func parseBcrypt(encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$") // "", id, cost, salt+hash
	if len(parts) != 4 {
		return parsedHash{}, errors.New("expected $id$cost$salt-and-hash")
	}
	cost, err := strconv.Atoi(parts[2])
	if err != nil || len(parts[2]) != 2 {
		return parsedHash{}, errors.New("cost is not a two-digit number")
	}
	if cost < bcryptMinCost || cost > bcryptMaxCost {
		return parsedHash{}, fmt.Errorf("cost %d outside %d..%d", cost, bcryptMinCost, bcryptMaxCost)
	}
	if len(parts[3]) != bcryptSaltKeyLen || !isCryptBase64(parts[3]) {
		return parsedHash{}, fmt.Errorf("salt and hash are not %d crypt-base64 characters", bcryptSaltKeyLen)
	}
	digest, err := bcrypt.DecodeVariant(bcrypt.VariantStandard)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("salt does not decode") // go-crypt's text would quote the hash
	}
	return parsedHash{kind: kindBcrypt, costClass: fmt.Sprintf("bcrypt cost=%d", cost), digest: digest}, nil
}

// parseSHACrypt accepts "$5$[rounds=N$]salt$hash" and the $6$ equivalent.
// Without rounds= the count is 5000 (the crypt specification's default).
func parseSHACrypt(kind hashKind, encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$")[2:] // drop "" and the id
	rounds := 5000
	if len(parts) == 3 {
		value, ok := strings.CutPrefix(parts[0], "rounds=")
		if !ok {
			return parsedHash{}, errors.New("expected rounds=N before the salt")
		}
		n, err := strconv.Atoi(value)
		if err != nil || value == "" || value[0] < '0' || value[0] > '9' {
			return parsedHash{}, errors.New("rounds is not a number")
		}
		if n < shaCryptMinRounds || n > shaCryptMaxRounds {
			return parsedHash{}, fmt.Errorf("rounds %d outside %d..%d", n, shaCryptMinRounds, shaCryptMaxRounds)
		}
		rounds = n
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return parsedHash{}, errors.New("expected $id$[rounds=N$]salt$hash")
	}
	salt, key := parts[0], parts[1]
	if salt == "" || len(salt) > shaCryptMaxSalt || strings.ContainsAny(salt, ":\n") {
		return parsedHash{}, fmt.Errorf("salt is not 1..%d characters", shaCryptMaxSalt)
	}
	keyLen := sha512CryptKeyLen
	variant := shacrypt.VariantSHA512
	if kind == kindSHA256Crypt {
		keyLen, variant = sha256CryptKeyLen, shacrypt.VariantSHA256
	}
	if len(key) != keyLen || !isCryptBase64(key) {
		return parsedHash{}, fmt.Errorf("hash is not %d crypt-base64 characters", keyLen)
	}
	digest, err := shacrypt.DecodeVariant(variant)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("does not decode")
	}
	return parsedHash{kind: kind, costClass: fmt.Sprintf("%s rounds=%d", kind, rounds), digest: digest}, nil
}

// parseArgon2id accepts "$argon2id$v=19$m=M,t=T,p=P$salt$tag" (the PHC string
// that libsodium, and so Dovecot, writes).
func parseArgon2id(encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$") // "", "argon2id", version, params, salt, tag
	if len(parts) != 6 {
		return parsedHash{}, errors.New("expected $argon2id$v=19$m=M,t=T,p=P$salt$tag")
	}
	if parts[2] != "v=19" {
		return parsedHash{}, errors.New("version is not v=19")
	}
	m, t, p, err := parseArgon2Params(parts[3])
	if err != nil {
		return parsedHash{}, err
	}
	for _, field := range []struct{ name, value string }{{"salt", parts[4]}, {"tag", parts[5]}} {
		if field.value == "" || len(field.value) > argon2MaxBytes*4/3+1 {
			return parsedHash{}, fmt.Errorf("%s length outside 1..%d bytes", field.name, argon2MaxBytes)
		}
	}
	digest, err := argon2.DecodeVariant(argon2.VariantID)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("salt or tag is not unpadded base64")
	}
	return parsedHash{kind: kindArgon2id, costClass: fmt.Sprintf("argon2id m=%d,t=%d,p=%d", m, t, p), digest: digest}, nil
}

// parseArgon2Params reads "m=M,t=T,p=P" in any order, each exactly once.
func parseArgon2Params(s string) (m, t, p uint64, err error) {
	seen := map[string]bool{}
	values := map[string]*uint64{"m": &m, "t": &t, "p": &p}
	for _, kv := range strings.Split(s, ",") {
		key, value, _ := strings.Cut(kv, "=")
		dst, known := values[key]
		if !known || seen[key] {
			return 0, 0, 0, errors.New("parameters are not m=M,t=T,p=P")
		}
		seen[key] = true
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("parameter %s is not a number", key)
		}
		*dst = n
	}
	switch {
	case len(seen) != 3:
		return 0, 0, 0, errors.New("parameters are not m=M,t=T,p=P")
	case p < 1 || p > argon2MaxThreads:
		return 0, 0, 0, fmt.Errorf("p=%d outside 1..%d", p, argon2MaxThreads)
	case t < 1 || t > argon2MaxTime:
		return 0, 0, 0, fmt.Errorf("t=%d outside 1..%d", t, argon2MaxTime)
	case m < 8*p || m > argon2MaxMemoryKiB:
		return 0, 0, 0, fmt.Errorf("m=%d outside 8*p..%d KiB", m, argon2MaxMemoryKiB)
	}
	return m, t, p, nil
}

// isCryptBase64 reports whether s uses only the crypt(3) alphabet [./0-9A-Za-z].
func isCryptBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// printableName returns s for an error message if it looks like a scheme or
// crypt identifier, and a placeholder otherwise: a mistyped line might put a
// password where a scheme name belongs, and errors must never show one.
func printableName(s string) string {
	if s == "" || len(s) > 20 {
		return "(unrecognised)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "(unrecognised)"
		}
	}
	return s
}

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
