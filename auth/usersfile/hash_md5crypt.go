package usersfile

import "crypto/md5"

// MD5-crypt, Poul-Henning Kamp's "$1$" scheme (FreeBSD, glibc, Dovecot's
// MD5-CRYPT) and Apache's "$apr1$" variant (`htpasswd -m`), which differs
// only in the magic string mixed into the hash. 1000 MD5 rounds: weak by
// today's standards, verified for old files and reported as weak.
//
// "$1$" is verified by go-crypt's md5crypt (hash_crypt.go). "$apr1$" is
// computed here: go-crypt has no APR1 variant, and its md5crypt key
// function (go-crypt/x crypt.KeyMD5Crypt) hard-codes the "$1$" magic.

const (
	md5CryptMagic = "$1$"
	apr1Magic     = "$apr1$"
	md5CryptSalt  = 8  // longer salts are cut to 8 characters when hashing
	md5CryptKey   = 22 // characters of the encoded hash
)

// apr1Crypt returns "$apr1$" + salt + "$" + the 22-character hash.
func apr1Crypt(password, salt string) string {
	const magic = apr1Magic
	pw := []byte(password)
	alt := md5.Sum([]byte(password + salt + password))
	ctx := md5.New()
	ctx.Write(pw)
	ctx.Write([]byte(magic + salt))
	for n := len(pw); n > 0; n -= 16 {
		ctx.Write(alt[:min(n, 16)])
	}
	// The original writes a NUL byte for a set bit and the first password
	// character for a clear one (its "bug" every implementation keeps).
	for i := len(pw); i != 0; i >>= 1 {
		if i&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pw[:1])
		}
	}
	final := ctx.Sum(nil)
	for i := 0; i < 1000; i++ {
		ctx.Reset()
		if i&1 != 0 {
			ctx.Write(pw)
		} else {
			ctx.Write(final)
		}
		if i%3 != 0 {
			ctx.Write([]byte(salt))
		}
		if i%7 != 0 {
			ctx.Write(pw)
		}
		if i&1 != 0 {
			ctx.Write(final)
		} else {
			ctx.Write(pw)
		}
		final = ctx.Sum(final[:0])
	}
	out := []byte(magic + salt + "$")
	put := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, cryptAlphabet[v&0x3f])
			v >>= 6
		}
	}
	for _, g := range [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		put(uint32(final[g[0]])<<16|uint32(final[g[1]])<<8|uint32(final[g[2]]), 4)
	}
	put(uint32(final[11]), 2)
	return string(out)
}
