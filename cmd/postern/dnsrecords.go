package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/postern/postern/proxy/listen"
)

// dnsRecordsCommand prints the DNS records for the autoconfig domains. It
// takes the serve flags (and config file) but needs only the listeners, the
// host name and the --autoconfig-*/--mta-sts-*/--tls-rpt-* settings.
func dnsRecordsCommand() *cli.Command {
	return &cli.Command{
		Name:   "dns-records",
		Usage:  "print the SRV/CNAME/TXT records for submission, autoconfig, MTA-STS and TLS-RPT (zone-file syntax)",
		Flags:  serveFlags(),
		Before: applyConfigFile,
		Action: func(c *cli.Context) error {
			hostname := c.String("hostname")
			if hostname == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("--hostname not set and the host name is unknown: %w", err)
				}
				hostname = h
			}
			smtpListen, httpsAddr, err := splitListen(c.StringSlice("listen"))
			if err != nil {
				return err
			}
			var listeners []listen.Listener
			for _, l := range smtpListen {
				pl, err := listen.ParseListener(l)
				if err != nil {
					return err
				}
				listeners = append(listeners, pl)
			}
			ac, err := buildAutoconfig(c, hostname, listeners, httpsAddr, nil, nil)
			if err != nil {
				return err
			}
			if ac == nil {
				return errors.New("--autoconfig-domain is required (the mail domains to write records for)")
			}
			return ac.WriteRecords(c.App.Writer)
		},
	}
}
