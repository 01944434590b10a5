package config

import "testing"

// metrics_listen is an IP literal and a port, loopback unless
// metrics_public; log_format is text or json.
func TestObservabilityKeys(t *testing.T) {
	for _, tc := range []struct {
		name, global string
		want         []string // "" entries: valid
	}{
		{"defaults", "", nil},
		{"loopback v4", `metrics_listen = "127.0.0.1:9617"`, nil},
		{"loopback v6", `metrics_listen = "[::1]:9617"`, nil},
		{"public opted in", "metrics_listen = \"0.0.0.0:9617\"\nmetrics_public = true", nil},
		{"json", `log_format = "json"`, nil},
		{"text", `log_format = "text"`, nil},
		{"no port", `metrics_listen = "127.0.0.1"`, []string{`t.toml:2: global.metrics_listen: must be host:port (e.g. "127.0.0.1:9617"), got "127.0.0.1"`}},
		{"bad port", `metrics_listen = "127.0.0.1:99999"`, []string{`t.toml:2: global.metrics_listen: port must be 1 to 65535, got "99999"`}},
		{"port zero", `metrics_listen = "127.0.0.1:0"`, []string{`t.toml:2: global.metrics_listen: port must be 1 to 65535, got "0"`}},
		{"host name", `metrics_listen = "localhost:9617"`, []string{`t.toml:2: global.metrics_listen: host must be an IP address (e.g. 127.0.0.1 or [::1]), got "localhost"`}},
		{"empty host", `metrics_listen = ":9617"`, []string{`t.toml:2: global.metrics_listen: host must be an IP address`}},
		{"public refused", `metrics_listen = "192.0.2.1:9617"`, []string{`t.toml:2: global.metrics_listen: 192.0.2.1 is not a loopback address: the metrics have no authentication; set metrics_public = true`}},
		{"public alone", `metrics_public = true`, []string{`t.toml:2: global.metrics_public: has no effect without metrics_listen`}},
		{"log format", `log_format = "logfmt"`, []string{`t.toml:2: global.log_format: must be "text" or "json", got "logfmt"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "[global]\n" + tc.global + "\n" + okJail
			if tc.want == nil {
				c, errs := validate(t, src)
				if errs != "" {
					t.Fatal(errs)
				}
				if c.Global.LogFormat == "" {
					t.Error("log_format has no default")
				}
				return
			}
			wantErrors(t, src, tc.want...)
		})
	}
}
