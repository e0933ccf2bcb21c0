package autoconfig

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestAppleProfileTitleIsTheDomain: the local part is the requester's
// free text, and the profile is signed with the served certificate, so it
// must not show as the profile's or the account's name: a request for
// Verify-your-account-at-evil.example@example.org got a "Verified" profile
// with that title. Only the account's address and login fields hold it.
func TestAppleProfileTitleIsTheDomain(t *testing.T) {
	s, err := New(testConfig()) // no Certificate: the plist unsigned
	if err != nil {
		t.Fatal(err)
	}
	const local = "Verify-your-account-at-evil.example"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet,
		"https://autoconfig.example.org/apple/"+local+"@example.org.mobileconfig", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	checkAppleProfileNames(t, rec.Body.Bytes(), local, testDomain)
}

// addressFields are the profile keys that may hold the address (or a login
// made of it): what the account is, not what it is called.
var addressFields = []string{"EmailAddress", "IncomingMailServerUsername", "OutgoingMailServerUsername"}

// checkAppleProfileNames fails unless local shows only in addressFields and
// the profile's title (top-level PayloadDisplayName) names domain.
func checkAppleProfileNames(t *testing.T, plist []byte, local, domain string) {
	t.Helper()
	pairs := plistStrings(t, plist)
	var title string
	sawAddress := false
	for _, kv := range pairs {
		if kv[0] == "PayloadDisplayName" {
			title = kv[1] // the last one is the top level's
		}
		if !strings.Contains(strings.ToLower(kv[1]), strings.ToLower(local)) {
			continue
		}
		if !slices.Contains(addressFields, kv[0]) {
			t.Errorf("%s shows the requested local part: %q", kv[0], kv[1])
		}
		if kv[0] == "EmailAddress" {
			sawAddress = true
		}
	}
	if !sawAddress {
		t.Errorf("the account lacks its address:\n%s", plist)
	}
	if !strings.Contains(title, domain) {
		t.Errorf("profile title %q does not name %s", title, domain)
	}
}

// plistStrings returns every <key> with the <string> that follows it, in
// document order, at any depth (the top-level dictionary's keys come after
// its PayloadContent array, so the account's come first).
func plistStrings(t *testing.T, plist []byte) [][2]string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(plist)))
	var pairs [][2]string
	var key, elem string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return pairs
		}
		if err != nil {
			t.Fatalf("profile is not XML: %v\n%s", err, plist)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			elem = tok.Name.Local
		case xml.CharData:
			switch elem {
			case "key":
				key = string(tok)
			case "string":
				pairs = append(pairs, [2]string{key, string(tok)})
			}
		case xml.EndElement:
			elem = ""
		}
	}
}
