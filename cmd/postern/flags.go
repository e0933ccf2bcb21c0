package main

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// env returns the environment twin of a flag: --max-message-size is
// POSTERN_MAX_MESSAGE_SIZE.
func env(name string) []string {
	return []string{"POSTERN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

func str(name, value, usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)}
}

func strs(name string, value []string, usage string) *cli.StringSliceFlag {
	f := &cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env(name)}
	if value != nil {
		f.Value = cli.NewStringSlice(value...)
	}
	return f
}

func dur(name string, value time.Duration, usage string) *cli.DurationFlag {
	return &cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)}
}

// serveFlags are the flags of `serve` and `check-config` (DESIGN.md's
// command-line contract). Every flag has an env twin and a config-file key
// of the same name.
func serveFlags() []cli.Flag {
	return []cli.Flag{
		str("config", "", "TOML file with the same keys as the flags (flags and env win)"),
		str("hostname", "", "name in the banner and the Received header (default: the host name)"),
		strs("listen", []string{"starttls=:587", "tls=:465", "starttls=:2525"}, "MODE=ADDR, MODE starttls|tls; repeatable"),
		str("upstream", "", "the internal MTA, HOST:PORT (it must trust Postern via mynetworks)"),
		str("users", "", "users file, Dovecot passwd-file format (login:hash)"),
		str("sender-map", "", "Postfix smtpd_sender_login_maps text file: 'address login[,login]' or '@domain login'"),
		str("tls-cert", "", "certificate chain (PEM)"),
		str("tls-key", "", "private key (PEM)"),
		str("mynetworks", "", "CIDRs that may relay without AUTH (still over TLS), comma-separated"),
		str("received", "anonymous", "Received header: anonymous|full|none"),
		&cli.Int64Flag{Name: "max-message-size", Value: 52428800, Usage: "bytes, advertised in SIZE and enforced while streaming", EnvVars: env("max-message-size")},
		&cli.IntFlag{Name: "max-recipients", Value: 100, Usage: "recipients per message", EnvVars: env("max-recipients")},
		&cli.IntFlag{Name: "max-auth-failures-per-connection", Value: 3, Usage: "AUTH failures before the connection is closed", EnvVars: env("max-auth-failures-per-connection")},
		dur("command-timeout", 5*time.Minute, "idle time allowed while waiting for a command or message data"),
		dur("data-timeout", 10*time.Minute, "longest time to receive one message"),
		dur("upstream-timeout", time.Minute, "wait for each upstream reply (10 minutes after the final dot)"),
		dur("shutdown-timeout", 30*time.Second, "on SIGTERM, time given to sessions in flight before they are closed"),
		str("log-format", "text", "text|json"),
		str("log-level", "info", "debug|info|warn|error"),
	}
}
