package usersfile

import (
	"crypto/des"
	"encoding/binary"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/postern/postern/internal/testkit"
)

// Vectors for the password "secret", generated on Dovecot 2.3.19 with
// `doveadm pw -s SCHEME -p secret` (DIGEST-MD5 with -u alice@example.org),
// htpasswd 2.4 and `openssl passwd`.
var secretVectors = []struct {
	name, hash, scheme string
	weak               bool
}{
	{"PLAIN", "{PLAIN}secret", "PLAIN", true},
	{"CLEAR", "{CLEAR}secret", "CLEAR", true},
	{"CLEARTEXT", "{CLEARTEXT}secret", "CLEARTEXT", true},
	{"PLAIN.b64", "{PLAIN.B64}c2VjcmV0", "PLAIN", true},
	{"PLAIN-TRUNC", "{PLAIN-TRUNC}6-secret", "PLAIN-TRUNC", true},
	{"SHA", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "SHA", true},
	{"SHA1", "{SHA1}5en6G6MezRroT3XKqkdPOmY/BfQ=", "SHA1", true},
	{"SHA.b64", "{SHA.B64}5en6G6MezRroT3XKqkdPOmY/BfQ=", "SHA", true},
	{"SHA256", "{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=", "SHA256", true},
	{"SHA256.HEX", "{SHA256.HEX}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "SHA256", true},
	{"SHA256 hex guessed", "{SHA256}2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B", "SHA256", true},
	{"SHA512", "{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg==", "SHA512", true},
	{"SSHA", "{SSHA}NbBOpUqGCJag61OgyKOx+XZ+n4t5uX+O", "SSHA", true},
	{"SSHA.hex", "{SSHA.HEX}29d887ba614e7ad7b3d561ce64728680ef1c4842f8d5cde9", "SSHA", true},
	{"SSHA256", "{SSHA256}SUxaCo+Y7MCX0nUAUjM8vL6ZE9a2E0k3YJGqwjkzLBhB5e6t", "SSHA256", true},
	{"SSHA512", "{SSHA512}cIvUeyHh3E57uZS73WlZHx4fdRTt9aK+mmuyZjdCweOjEw0n4yjJjs1iGQBztcWhUGrBDYIXFb4QXYtBhRZ467krvS0=", "SSHA512", true},
	{"SMD5", "{SMD5}GHo4hwycg0oQ+U7ZzMO9QxXQJFM=", "SMD5", true},
	{"PLAIN-MD5", "{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69", "PLAIN-MD5", true},
	{"PLAIN-MD5.b64", "{PLAIN-MD5.B64}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "PLAIN-MD5", true},
	{"LDAP-MD5", "{LDAP-MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "LDAP-MD5", true},
	{"PLAIN-MD4", "{PLAIN-MD4}67d3dafef63ff00603aeef3769cfbf0d", "PLAIN-MD4", true},
	{"MD5 as MD5-crypt", "{MD5}$1$VhGTj1Ke$rd8JRE3H8VHggfq7xfyNq0", "MD5-CRYPT", true},
	{"MD5 as PLAIN-MD5", "{MD5}5ebe2294ecd0e0f08eab7690d2a6ee69", "PLAIN-MD5", true},
	{"MD5-CRYPT", "{MD5-CRYPT}$1$5oxpYnPx$41Dfs70i7M/Oqjs0NGGK0/", "MD5-CRYPT", true},
	{"MD5-CRYPT.hex", "{MD5-CRYPT.HEX}24312457343335694a2f4624353355454b58594273374663686e6259734f58644131", "MD5-CRYPT", true},
	{"openssl passwd -1", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1", "MD5-CRYPT", true},
	{"openssl passwd -apr1", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", "APR1-MD5", true},
	{"htpasswd -m", "$apr1$pTJUjx2O$57qT1oAPOgW7E7lvUSEG./", "APR1-MD5", true},
	{"DES-CRYPT", "{DES-CRYPT}YdLq/tvZRkgLM", "DES-CRYPT", true},
	{"CRYPT holding DES", "{CRYPT}W84Jfp31WUQOg", "DES-CRYPT", true},
	{"htpasswd -d", "IkbYax4BY4ikc", "DES-CRYPT", true},
	{"CRYPT holding bcrypt", "{CRYPT}$2y$05$BoBe8K6XqngP065mf2WdDeEdvoy8YRv96k/SmBVPGBO2xgTckY7/G", "BLF-CRYPT", false},
	{"CRAM-MD5", "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56", "CRAM-MD5", true},
	{"CRAM-MD5.b64", "{CRAM-MD5.B64}zTun3qrW5cojRIukLjeXR6ng9/H7wAyKgbuqw5VzG1Y=", "CRAM-MD5", true},
	{"HMAC-MD5", "{HMAC-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56", "HMAC-MD5", true},
	{"PBKDF2", "{PBKDF2}$1$I.GUx6ZxzecaDmGN$5000$fe4210d54166263e0b0152a3dbf27b0327b6ce49", "PBKDF2", false},
	{"SCRAM-SHA-1", "{SCRAM-SHA-1}4096,U6kfNA0mEwnKdW/vBUGe5Q==,yik3NC26MK4JY+dWj9si02foYd0=,swqszjg5K7cjaaDG3a0xTbdBMKg=", "SCRAM-SHA-1", false},
	{"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,Mcn5GAz47BSUlnFWepYteQ==,dwFCTbN/KdW0vJKyk5aEynzmSh3hX7vlIw78/s/3m60=,0o4E1gw7OuiJlo69Wr0imXDDEYiwWQyaXmkVwVYYTc0=", "SCRAM-SHA-256", false},
	{"ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$haNeaa2n8qXKT4RYJcuM0w$Js5daOkOO4TNrN62zlg5AF/xmQTHoqzt0lmlsIzin6w", "ARGON2I", false},
}

func TestVerifyDovecotSchemes(t *testing.T) {
	for _, tc := range secretVectors {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseHashFor(tc.hash, "alice@example.org")
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if h.scheme != tc.scheme || h.weak != tc.weak {
				t.Errorf("scheme, weak = %q, %v; want %q, %v", h.scheme, h.weak, tc.scheme, tc.weak)
			}
			for password, want := range map[string]bool{"secret": true, "Secret": false, "secre": false, "": false, "secret\x00": false} {
				if got, err := h.verify(password); err != nil || got != want {
					t.Errorf("verify(%q) = %v, %v; want %v", password, got, err, want)
				}
			}
		})
	}
}

func TestVerifyDigestMD5UsesTheLogin(t *testing.T) {
	// doveadm pw -s DIGEST-MD5 -u alice@example.org / -u alice -p secret
	for login, hash := range map[string]string{
		"alice@example.org": "{DIGEST-MD5}543e1aec5d3614f03141652d6ada51b2",
		"alice":             "{DIGEST-MD5}cc3a3506aba601d2feee7bf9b34237ce",
	} {
		h, err := parseHashFor(hash, login)
		if err != nil {
			t.Fatalf("%s: parse: %v", login, err)
		}
		if ok, _ := h.verify("secret"); !ok {
			t.Errorf("%s: the right password does not verify", login)
		}
		other, _ := parseHashFor(hash, "bob@example.org")
		if ok, _ := other.verify("secret"); ok {
			t.Errorf("%s's hash verifies for another login", login)
		}
	}
}

func TestPlainTruncMatchesPrefix(t *testing.T) {
	h, err := parseHash("{PLAIN-TRUNC}3-sec")
	if err != nil {
		t.Fatal(err)
	}
	for password, want := range map[string]bool{"sec": true, "secret": true, "se": false, "sex": false, "": false} {
		if got, _ := h.verify(password); got != want {
			t.Errorf("verify(%q) = %v, want %v", password, got, want)
		}
	}
}

// TestDESCore checks the DES underneath DES-crypt against crypto/des (the
// FIPS 46 worked example), and DES-crypt's 8-character limit.
func TestDESCore(t *testing.T) {
	const key, plain = 0x133457799BBCDFF1, 0x0123456789ABCDEF
	ks := desSubkeys(key)
	e := desE
	got := desEncrypt(plain, &ks, &e)
	c, err := des.NewCipher(binary.BigEndian.AppendUint64(nil, key))
	if err != nil {
		t.Fatal(err)
	}
	var want [8]byte
	c.Encrypt(want[:], binary.BigEndian.AppendUint64(nil, plain))
	if got != binary.BigEndian.Uint64(want[:]) || got != 0x85E813540F0AB405 {
		t.Errorf("DES = %x, want %x", got, want)
	}
	if desCrypt("secret", "W8") != "W84Jfp31WUQOg" { // mkpasswd -m des -S W8 secret
		t.Errorf("desCrypt = %q", desCrypt("secret", "W8"))
	}
	if desCrypt("12345678", "ab") != desCrypt("123456789", "ab") {
		t.Errorf("DES-crypt must ignore characters past the 8th, as crypt(3) does")
	}
}

// TestVerifyEveryDoveadmScheme asks `doveadm pw -l` for the schemes this
// Dovecot knows, hashes a password with each, in each encoding, and checks
// that Postern verifies it, except the ones it deliberately skips.
func TestVerifyEveryDoveadmScheme(t *testing.T) {
	doveadm := testkit.RequireTool(t, "doveadm")
	out, err := exec.Command(doveadm, "pw", "-l").Output()
	if err != nil {
		t.Fatalf("doveadm pw -l: %v", err)
	}
	schemes := strings.Fields(string(out))
	if len(schemes) < 20 {
		t.Fatalf("doveadm pw -l listed only %q", schemes)
	}
	const login, password = "alice@example.org", "s3cret:pass wörd"
	for _, scheme := range schemes {
		for _, enc := range []string{"", ".b64", ".HEX"} {
			name := scheme + enc
			t.Run(name, func(t *testing.T) {
				out, err := exec.Command(doveadm, "pw", "-s", name, "-u", login, "-p", password).Output()
				if err != nil {
					t.Skipf("doveadm pw -s %s: %v", name, err) // e.g. OTP.b64
				}
				hash := strings.TrimSpace(string(out))
				h, err := parseHashFor(hash, login)
				switch {
				case scheme == "OTP":
					if !errors.Is(err, ErrUnknownScheme) {
						t.Errorf("OTP: err = %v, want ErrUnknownScheme", err)
					}
					return
				case scheme == "PLAIN-TRUNC":
					// doveadm writes no "N-" prefix, which Dovecot itself
					// then refuses to verify ("missing length: prefix").
					if err == nil || errors.Is(err, ErrUnknownScheme) {
						t.Errorf("PLAIN-TRUNC without length: err = %v, want malformed", err)
					}
					return
				case err != nil:
					t.Fatalf("parse: %v", err)
				}
				wrong := map[string]bool{password: true, "S" + password[1:]: false, "": false, password + "\x00": false}
				if !strings.HasPrefix(scheme, "DES") { // DES-crypt uses 8 characters
					wrong[password[:len(password)-1]] = false
				}
				for pw, want := range wrong {
					if got, err := h.verify(pw); err != nil || got != want {
						t.Errorf("verify(%q) = %v, %v; want %v", pw, got, err, want)
					}
				}
			})
		}
	}
}

func TestWeakClassification(t *testing.T) {
	strong := []string{vecBcryptCost4, vecSHA512, vecArgon2id, "{PBKDF2}$1$salt$1000$fe4210d54166263e0b0152a3dbf27b0327b6ce49"}
	for _, hash := range strong {
		if h, err := parseHash(hash); err != nil || h.weak {
			t.Errorf("%.20s...: weak = %v, err %v; want a strong hash", hash, h.weak, err)
		}
	}
	if h, err := parseHash("{PBKDF2}$1$salt$999$fe4210d54166263e0b0152a3dbf27b0327b6ce49"); err != nil || !h.weak {
		t.Errorf("PBKDF2 with 999 rounds: weak = %v, %v; want weak", h.weak, err)
	}
}

// TestCRAMMD5LongPassword: HMAC hashes a key longer than the 64-byte block
// first (RFC 2104 §2); vector from doveadm pw -s CRAM-MD5 with 100 "x".
func TestCRAMMD5LongPassword(t *testing.T) {
	long := strings.Repeat("x", 100)
	for password, want := range map[string]bool{long: true, long[:99]: false, long[:64]: false} {
		if got, err := VerifyPassword("{CRAM-MD5}52197db948d0932512a61b183e7d05b04e94d60a3bb0d00f92d3df52a5d275ca", password); err != nil || got != want {
			t.Errorf("verify(%d x) = %v, %v; want %v", len(password), got, err, want)
		}
	}
}
