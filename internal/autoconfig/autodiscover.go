package autoconfig

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
)

// Outlook's "plain old XML" autodiscover (MS-OXDSCLI): the request names
// the address; the response (namespaces responseschema/2006 and, inside,
// outlook/responseschema/2006a) lists one Protocol per server.

// adRequest is the part of the request Postern reads; the namespace is not
// checked, clients differ in it.
type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"Request"`
}

type adResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		// User echoes the address asked about.
		User struct {
			DisplayName             string `xml:"DisplayName"`
			AutoDiscoverSMTPAddress string `xml:"AutoDiscoverSMTPAddress"`
		} `xml:"User"`
		Account struct {
			AccountType string       `xml:"AccountType"` // email
			Action      string       `xml:"Action"`      // settings
			Protocol    []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type adProtocol struct {
	Type           string `xml:"Type"` // IMAP, SMTP
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName"`
	DomainRequired string `xml:"DomainRequired"` // off
	SPA            string `xml:"SPA"`            // off: no NTLM
	SSL            string `xml:"SSL"`            // on: TLS in either form
	Encryption     string `xml:"Encryption"`     // SSL (implicit) or TLS (STARTTLS); overrides SSL
	AuthRequired   string `xml:"AuthRequired"`   // on
}

// parseAutodiscoverRequest returns the EMailAddress of a request body.
func parseAutodiscoverRequest(body []byte) (string, error) {
	var req adRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		return "", err
	}
	if req.Request.EMailAddress == "" {
		return "", errors.New("no EMailAddress")
	}
	return req.Request.EMailAddress, nil
}

func adProto(typ string, e Endpoint, login string) adProtocol {
	p := adProtocol{Type: typ, Server: e.Host, Port: e.Port, LoginName: login,
		DomainRequired: "off", SPA: "off", SSL: "on", Encryption: "TLS", AuthRequired: "on"}
	if e.ImplicitTLS {
		p.Encryption = "SSL"
	}
	return p
}

// autodiscoverResponse builds the answer for local@domain.
func (s *Server) autodiscoverResponse(local, domain string) ([]byte, error) {
	login := s.username(local, domain)
	var resp adResponse
	resp.Response.User.DisplayName = local + "@" + domain
	resp.Response.User.AutoDiscoverSMTPAddress = local + "@" + domain
	resp.Response.Account.AccountType = "email"
	resp.Response.Account.Action = "settings"
	if e := s.cfg.IMAP; e != nil {
		resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, adProto("IMAP", *e, login))
	}
	for _, e := range s.outgoing() {
		resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, adProto("SMTP", e, login))
	}
	return marshalXML(resp)
}

// serveAutodiscover answers POST /autodiscover/autodiscover.xml. The body
// is bounded (413 past MaxAutodiscoverBody) and read whole before parsing.
func (s *Server) serveAutodiscover(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAutodiscoverBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	addr, err := parseAutodiscoverRequest(body)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	local, domain, ok := s.addressDomain(w, r, addr)
	if !ok {
		return
	}
	out, err := s.autodiscoverResponse(local, domain)
	if err != nil {
		s.cfg.Log.Error("autoconfig: building the autodiscover response", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeBody(w, r, "application/xml; charset=utf-8", out)
}
