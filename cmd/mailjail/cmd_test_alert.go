package main

import (
	"net/mail"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/notify"
)

// testAlertOutput is the --json schema of `test-alert`.
type testAlertOutput struct {
	Sent  bool     `json:"sent"`
	To    []string `json:"to"`
	Via   string   `json:"via"`
	Error string   `json:"error,omitempty"`
}

func testAlertCommand() *cli.Command {
	return &cli.Command{
		Name:  "test-alert",
		Usage: "send a sample alert through the configured mail path",
		Description: `Builds a sample alert (a made-up ban of 192.0.2.1 in jail "test-alert":
nothing is banned) with the configured templates and sends it the way the
daemon sends alerts ([alert] transport: smtp with its tls, ca_file, AUTH
and timeout, or sendmail), to [alert] to or to --to ADDR. No daemon is
needed, and the outbox is not used: the mail is sent once, now.

Prints "sent to ADDR... via PATH" and exits 0 when the relay (or
sendmail) accepted the mail, else prints the relay's error and exits 1.
A configuration without alerts (no [alert] to, or no smtp for transport
smtp) is a usage error (exit 2).

JSON: {"sent", "to": [ADDR], "via", "error"?}

Examples:
   mailjail test-alert
   mailjail test-alert --to me@example.org
   mailjail -c /etc/mailjail/mailjail.toml.new test-alert --json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "send to `ADDR` instead of [alert] to"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			nc := cfg.Alert.Notify()
			if to := c.String("to"); to != "" {
				if _, err := mail.ParseAddress(to); err != nil {
					return exitf(control.ExitUsage, "test-alert: --to %q: %v", to, err)
				}
				nc.To = []string{to}
			}
			switch {
			case len(nc.To) == 0:
				return exitf(control.ExitUsage, "test-alert: no recipient: set [alert] to in %s, or give --to ADDR", cfg.Source)
			case nc.Transport == notify.TransportSMTP && nc.SMTP == "":
				return exitf(control.ExitUsage, "test-alert: no relay: set [alert] smtp = \"host:port\" (or transport = \"sendmail\") in %s", cfg.Source)
			}
			s, err := notify.NewSender(nc, time.Now)
			if err != nil {
				return exitf(control.ExitUsage, "test-alert: %v", err)
			}
			out := testAlertOutput{To: s.Recipients(), Via: s.Via()}
			sendErr := s.Send(c.Context, []notify.Alert{notify.SampleAlert(time.Now())})
			out.Sent = sendErr == nil
			if sendErr != nil {
				out.Error = sendErr.Error()
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, out); err != nil {
					return err
				}
			} else if out.Sent {
				textf(c.App.Writer, "sent to %s via %s\n", strings.Join(out.To, ", "), out.Via)
			}
			if sendErr != nil {
				return exitf(control.ExitNotFound, "test-alert: not sent via %s: %v", out.Via, sendErr)
			}
			return nil
		},
	}
}
