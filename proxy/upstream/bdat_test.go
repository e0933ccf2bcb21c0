package upstream

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/proxy/proxytest"
)

// TestUpstreamChunkRefusedKeepsConnection: the upstream's refusal of a
// message, sent as one BDAT LAST chunk or (longer than a chunk) as DATA, is
// its answer passed on as such, and the connection goes on to the next
// transaction; the next message, accepted, arrives byte for byte.
func TestUpstreamChunkRefusedKeepsConnection(t *testing.T) {
	refusal := &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "content refused"}
	fake := proxytest.StartUpstream(t, proxytest.UpstreamOptions{DataError: refusal})
	up, err := Dial(context.Background(), Config{Addr: fake.Addr, HeloName: "postern.test",
		DialTimeout: 5 * time.Second, Timeout: 5 * time.Second}, Identity{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Quit()
	send := func(msg string) (string, error) {
		t.Helper()
		if mailErr, rcptErr := up.MailRcpt("alice@example.test", nil, "bob@example.test", nil); mailErr != nil || rcptErr != nil {
			t.Fatal(mailErr, rcptErr)
		}
		resp, _, bodyErr, err := up.Data(func(w io.Writer) (int64, error) {
			n, err := io.WriteString(w, msg)
			return int64(n), err
		})
		if bodyErr != nil {
			t.Fatalf("body error %v, want the upstream's reply", bodyErr)
		}
		return resp, err
	}
	for _, size := range []int{1000, bdatMax + 1, 3 * bdatMax} {
		msg := "Subject: refused\r\n\r\n" + strings.Repeat(".x\r\n", size/4)
		fake.SetOptions(proxytest.UpstreamOptions{DataError: refusal})
		_, err := send(msg)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != refusal.EnhancedCode || se.Message != refusal.Message {
			t.Fatalf("%d bytes: got %v, want the upstream's %v", size, err, refusal)
		}
		if err := up.Reset(); err != nil {
			t.Fatalf("%d bytes: RSET after the refusal: %v", size, err)
		}
		fake.SetOptions(proxytest.UpstreamOptions{})
		msg = strings.Replace(msg, "refused", "accepted", 1)
		if _, err := send(msg); err != nil {
			t.Fatalf("%d bytes: the next message: %v", size, err)
		}
		msgs := fake.Messages()
		if got := msgs[len(msgs)-1].Data; string(got) != msg {
			t.Fatalf("%d bytes: stored %d bytes, not the %d sent", size, len(got), len(msg))
		}
		if !up.idle() {
			t.Fatalf("%d bytes: upstream not reusable after an accepted message", size)
		}
	}
}
