package autoconfig

import (
	"encoding/xml"
	"net/http"
)

// Thunderbird's autoconfig format, config-v1.1
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
// Only the elements Postern can fill are declared.
type tbClientConfig struct {
	XMLName       xml.Name        `xml:"clientConfig"`
	Version       string          `xml:"version,attr"`
	EmailProvider tbEmailProvider `xml:"emailProvider"`
}

type tbEmailProvider struct {
	ID               string     `xml:"id,attr"`
	Domain           string     `xml:"domain"`
	DisplayName      string     `xml:"displayName"`
	DisplayShortName string     `xml:"displayShortName"`
	Incoming         []tbServer `xml:"incomingServer"`
	Outgoing         []tbServer `xml:"outgoingServer"`
}

type tbServer struct {
	Type           string `xml:"type,attr"` // imap, smtp
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`     // SSL, STARTTLS
	Authentication string `xml:"authentication"` // password-cleartext: PLAIN/LOGIN inside TLS
	Username       string `xml:"username"`
}

// socketType names an endpoint's security the way config-v1.1 does.
func socketType(e Endpoint) string {
	if e.ImplicitTLS {
		return "SSL"
	}
	return "STARTTLS"
}

// thunderbirdConfig builds the document for domain; local is empty when the
// client gave no address (the username then keeps its placeholders).
func (s *Server) thunderbirdConfig(local, domain string) ([]byte, error) {
	user := s.username(local, domain)
	doc := tbClientConfig{Version: "1.1", EmailProvider: tbEmailProvider{
		ID: domain, Domain: domain, DisplayName: domain, DisplayShortName: domain,
	}}
	if e := s.cfg.IMAP; e != nil {
		doc.EmailProvider.Incoming = append(doc.EmailProvider.Incoming, tbServer{
			Type: "imap", Hostname: e.Host, Port: e.Port, SocketType: socketType(*e),
			Authentication: "password-cleartext", Username: user,
		})
	}
	for _, e := range s.outgoing() {
		doc.EmailProvider.Outgoing = append(doc.EmailProvider.Outgoing, tbServer{
			Type: "smtp", Hostname: e.Host, Port: e.Port, SocketType: socketType(e),
			Authentication: "password-cleartext", Username: user,
		})
	}
	return marshalXML(doc)
}

// serveThunderbird answers GET /mail/config-v1.1.xml (autoconfig.D) and
// /.well-known/autoconfig/mail/config-v1.1.xml (D). Thunderbird adds
// ?emailaddress=; when present it picks the domain and fills the username.
func (s *Server) serveThunderbird(w http.ResponseWriter, r *http.Request) {
	var local, domain string
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		var ok bool
		if local, domain, ok = s.addressDomain(w, r, addr); !ok {
			return
		}
	} else if domain = s.hostDomain(r); domain == "" {
		http.NotFound(w, r)
		return
	}
	body, err := s.thunderbirdConfig(local, domain)
	if err != nil {
		s.cfg.Log.Error("autoconfig: building the Thunderbird document", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeBody(w, r, "application/xml; charset=utf-8", body)
}

// marshalXML encodes v indented, after the XML declaration. encoding/xml
// escapes every value.
func marshalXML(v any) ([]byte, error) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(body, '\n')...), nil
}
