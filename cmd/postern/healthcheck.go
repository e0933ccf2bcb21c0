package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"
)

// healthcheckCommand is for Docker's HEALTHCHECK: the image has no curl.
func healthcheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "query a running postern's /healthz (exit 0 when healthy)",
		Flags: []cli.Flag{
			str("url", "http://127.0.0.1:9090/healthz", "health URL of the --metrics listener"),
			dur("timeout", 5*time.Second, "give up after this long"),
		},
		Action: func(c *cli.Context) error {
			client := &http.Client{Timeout: c.Duration("timeout")}
			resp, err := client.Get(c.String("url"))
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck: %s: %s", resp.Status, body)
			}
			fmt.Fprintf(c.App.Writer, "%s", body)
			return nil
		},
	}
}
