package main

import (
	"github.com/urfave/cli/v2"

	"github.com/postern/postern/cmd/postern/internal/serve"
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
			return serve.WriteDNSRecords(serveConfig(c), c.App.Writer)
		},
	}
}
