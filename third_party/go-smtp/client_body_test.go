package smtp

import "testing"

// With DeclaredBody, MAIL carries BODY= as the caller declared it and only
// when the server offers the extension; without, BODY=8BITMIME goes with
// every MAIL to a server offering 8BITMIME (go-smtp's behaviour).
func TestClientDeclaredBody(t *testing.T) {
	for _, tc := range []struct {
		name     string
		declared bool
		ext      []string
		body     BodyType
		want     string
	}{
		{"default, 8BITMIME", false, []string{"8BITMIME"}, "", "MAIL FROM:<a@x.test> BODY=8BITMIME"},
		{"default, no 8BITMIME", false, nil, Body8BitMIME, "MAIL FROM:<a@x.test>"},
		{"declared nothing", true, []string{"8BITMIME"}, "", "MAIL FROM:<a@x.test>"},
		{"declared 7BIT", true, []string{"8BITMIME"}, Body7Bit, "MAIL FROM:<a@x.test> BODY=7BIT"},
		{"declared 8BITMIME", true, []string{"8BITMIME"}, Body8BitMIME, "MAIL FROM:<a@x.test> BODY=8BITMIME"},
		{"declared 8BITMIME, not offered", true, nil, Body8BitMIME, "MAIL FROM:<a@x.test>"},
		{"declared BINARYMIME, not offered", true, []string{"8BITMIME"}, BodyBinaryMIME, "MAIL FROM:<a@x.test>"},
		{"declared BINARYMIME", true, []string{"8BITMIME", "BINARYMIME"}, BodyBinaryMIME, "MAIL FROM:<a@x.test> BODY=BINARYMIME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{DeclaredBody: tc.declared, didHello: true, ext: map[string]string{}}
			for _, e := range tc.ext {
				c.ext[e] = ""
			}
			got, err := c.mailCommand("a@x.test", &MailOptions{Body: tc.body})
			if err != nil || got != tc.want {
				t.Fatalf("mailCommand = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
