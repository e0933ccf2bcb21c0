package policy

import (
	"net/netip"
	"testing"
)

func TestInNetworks(t *testing.T) {
	nets, err := ParseNetworks("127.0.0.0/8 2001:db8::/32 ::ffff:10.0.0.0/104")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"127.0.0.9": true, "::ffff:127.0.0.1": true, "2001:db8::1": true, "10.0.0.1": true, "11.0.0.1": false, "2001:db9::1": false,
	} {
		if got := InNetworks(nets, netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: got %v, want %v", addr, got, want)
		}
	}
}

// FuzzParseNetworks: --mynetworks and --proxy-protocol-from never panic, and
// every network they accept contains its own address.
func FuzzParseNetworks(f *testing.F) {
	f.Add("127.0.0.0/8, [::1]/128 192.0.2.1")
	f.Add("[2001:db8::]/32")
	f.Add("1.2.3.4/33")
	f.Add("::ffff:10.0.0.0/104")
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := ParseNetworks(s)
		if err != nil {
			return
		}
		for _, p := range nets {
			if !InNetworks(nets, p.Addr()) {
				t.Fatalf("%v does not contain its own address", p)
			}
		}
	})
}
