package config

// Section documents one table of the configuration for mailjail.toml(5).
type Section struct {
	Name  string // "global", "jail.NAME"
	Intro string
	Keys  []KeyDoc
}

// KeyDoc documents one key: its type as written, its default ("" when
// there is none) and what it does.
type KeyDoc struct {
	Key, Type, Default, Doc string
}

// Reference is the configuration reference: every key the decoder
// accepts (AcceptedKeys), by section. mailjail.toml(5) is generated from
// it, and a test fails when a key is accepted but not documented here,
// or documented but no longer accepted. [defaults] takes the keys of
// jail.NAME and is documented with them.
var Reference = []Section{
	{Name: "global", Intro: "Settings shared by every jail.", Keys: []KeyDoc{
		{"database", "path", "/var/lib/mailjail/mailjail.db", "The SQLite state database (mode 0600). Before a schema migration it is copied to PATH.bak."},
		{"map_file", "path", "/etc/rspamd/local.d/maps/ip_blacklist_ratelimit.map", "rspamd's multimap ip file of the rspamd-map target, rewritten atomically; a rewrite keeps its mode and group."},
		{"account_map_file", "path", "mailjail_accounts.map beside map_file", "rspamd's multimap user file of suspended accounts."},
		{"socket", "path", "/run/mailjail/mailjail.sock", "The control socket the CLI talks to."},
		{"socket_group", "group", "", "Makes the socket 0660 for this group (else 0600)."},
		{"ignoreip", "list of addresses, CIDRs, host names and file:PATH", `["127.0.0.0/8", "::1"]`, "Never banned; manual bans of them are refused. Added to every jail's own. A host name is resolved at start and every dns_refresh (a failed lookup keeps its last addresses, saved in the database); file:PATH names a file of entries, one a line with # comments, reread within a second of a change."},
		{"ignoreself", "bool", "true", "The host's own addresses are in every jail's ignoreip (fail2ban's ignoreself)."},
		{"dns_refresh", "duration", "5m", "How often ignoreip host names and the host's own addresses are looked up again."},
		{"allow_senders", "list", "", "Logins, senders and domains never rate limited nor suspended (beside mailjail allow)."},
		{"timezone", "zone name", "the host's", "Zone of log timestamps that carry none (rspamd, syslog)."},
		{"from_start", "bool", "false", "On the very first start, read what the logs already hold instead of starting at their end."},
		{"log_level", "debug|info|warn|error", "info", "The daemon's log level."},
		{"log_format", "text|json", "text", "The daemon's log lines: logfmt, or one JSON object a line. Under journald neither carries a time."},
		{"metrics_listen", "IP:port", "", "Serve Prometheus /metrics and /healthz there (plain HTTP, no authentication); off when unset."},
		{"metrics_public", "bool", "false", "Allow a metrics_listen address that is not loopback."},
		{"min_prefix_v4", "int", "16", "The widest IPv4 ban a manual ban may ask for without --force (0 allows any)."},
		{"dbpurgeage", "duration", "30d", "History older than this (strikes, ended bans and suspensions, rate events, delivered outbox items) is purged; active bans and suspensions never are."},
		{"dbmaxmatches", "int", "1", "How many of an address's newest strikes in a jail keep their log line (show, alerts); older ones keep their time and bucket. 0: none."},
		{"min_prefix_v6", "int", "32", "The widest IPv6 ban a manual ban may ask for without --force (0 allows any)."},
		{"targets", "list of rspamd-map|postfix|nftables|rspamd-redis", `["rspamd-map"]`, "Enforcement targets of jails that name none, and of manual bans."},
	}},
	{Name: "jail.NAME", Intro: "One jail (fail2ban's words). [defaults] takes the same keys and gives them to every jail that leaves them out (fail2ban's [DEFAULT]).", Keys: []KeyDoc{
		{"enabled", "bool", "true", "A disabled jail is checked but reads nothing."},
		{"filter", "name", "the jail's name", "A built-in filter (rspamd-ratelimit, postfix-ratelimit) or a [filter.NAME]."},
		{"logpath", "list of files or globs", "", "Log files followed; a file is read once even when several jails use it."},
		{"journalmatch.units", "list", "", "Follow the systemd journal: entries of these units."},
		{"journalmatch.identifiers", "list", "", "Follow the systemd journal: entries of these syslog identifiers (\"postfix/*\")."},
		{"maxretry", "int", "10", "Strikes inside findtime that ban."},
		{"findtime", "duration", "10m", "The window strikes are counted in."},
		{"bantime", "duration or \"permanent\"", "1h", "The first ban's length."},
		{"bantime_factor", "number", "2", "Each earlier ban inside bantime_lookback multiplies the ban by this."},
		{"bantime_maxtime", "duration", "1w", "The longest escalated ban."},
		{"bantime_lookback", "duration", "30d", "How far back earlier bans count for escalation."},
		{"ipv6_prefix", "int", "128", "Count and ban IPv6 clients per /N (64: a customer network)."},
		{"ignoreip", "list of addresses, CIDRs, host names and file:PATH", "", "Never banned by this jail, beside [global] ignoreip."},
		{"buckets", "list", "ip, to_ip, to_ip_from, bounce_to_ip (user in an account jail)", "rspamd ratelimit buckets that strike; empty: any."},
		{"key", "address|account", "address", "What is counted: the client address or the authenticated login."},
		{"suspend", "bool", "true", "An account jail suspends the account (account_map_file) for the ban time."},
		{"ban_sources", "bool", "true", "An account jail bans the addresses its strikes came from, except ignoreip."},
		{"alert", "bool", "true", "Mail [alert] recipients about this jail's bans and suspensions."},
		{"targets", "list", "[global] targets", "Where this jail's bans are put into force."},
		{"ban_action", "argv list", "", "A command run without a shell on each ban; placeholders <ip>, <jail>, <bantime>."},
		{"unban_action", "argv list", "", "A command run without a shell on each unban."},
		{"action_timeout", "duration", "30s", "Each ban_action and unban_action run is killed after this long (at most 1h)."},
		{"webhooks", "list of names", "", "The [webhook.NAME] sections told of this jail's events."},
		{"rate_key", "sasl_username|sender|client", "", "Makes a rate jail: Postfix messages and recipients per key."},
		{"messages.burst", "number", "", "A rate jail's message bucket size."},
		{"messages.rate", "\"N / period\"", "", "A rate jail's message leak rate, as rspamd writes it."},
		{"recipients.burst", "number", "", "A rate jail's recipient bucket size."},
		{"recipients.rate", "\"N / period\"", "", "A rate jail's recipient leak rate."},
		{"mode", "ban|log-only|suspend", "", "What a rate jail does with a key over its limit."},
		{"accounting", "leaky|strict|window", "leaky", "Whether refused messages fill the bucket (strict), or a sliding window counts (window)."},
		{"rspamd_version", "3.4|3.6", "", "Whose ratelimit check the buckets follow."},
		{"max_entries", "int", "100000", "Keys a rate jail tracks, least recently used evicted first."},
		{"on_full", "fail-open|fail-closed", "fail-open", "New keys when the table is full of active ones: let through, or treat as over the limit."},
		{"suspend_factor", "number", "0 (off)", "An event at this many times the burst is urgent."},
		{"window", "duration", "", "A sliding window counting messages and recipients (accounting = \"window\")."},
		{"max_messages", "number", "", "Messages allowed inside window."},
		{"max_recipients", "number", "", "Recipients allowed inside window."},
		{"new_accounts_within", "duration", "0 (every account)", "mode = \"suspend\" only suspends accounts first seen within this long."},
	}},
	{Name: "filter.NAME", Intro: "A filter of your own.", Keys: []KeyDoc{
		{"failregex", "list of regexes", "", "Lines that strike; <HOST> matches an IPv4 or IPv6 literal, <USER> a login."},
		{"ignoreregex", "list of regexes", "", "Lines that never strike."},
		{"prefilter", "string", "derived from failregex", "A literal every event line contains, checked before the regex (\"\" for none)."},
		{"datepattern", "string", "", "The log's timestamp format."},
	}},
	{Name: "alert", Intro: "Mails to administrators (off without to).", Keys: []KeyDoc{
		{"to", "list of addresses", "", "Recipients; alerts are off without them."},
		{"from", "address", "", "The sender."},
		{"transport", "smtp|sendmail", "smtp", "How mail leaves."},
		{"smtp", "host:port", "", "The relay, normally the local Postfix."},
		{"tls", "opportunistic|mandatory|implicit|none", "opportunistic", "TLS to the relay."},
		{"ca_file", "path", "the system's roots", "PEM roots for the relay."},
		{"tls_server_name", "string", "the host of smtp", "Name checked in the relay's certificate."},
		{"username", "string", "", "Turns on AUTH (PLAIN or LOGIN)."},
		{"password", "string", "", "AUTH password."},
		{"password_file", "path", "", "AUTH password from the file's first line."},
		{"timeout", "duration", "30s", "Per mail, connect to QUIT."},
		{"helo", "string", "the host's name", "EHLO name."},
		{"sendmail", "path", "/usr/sbin/sendmail", "The sendmail program of transport = \"sendmail\"."},
		{"subject_prefix", "string", "", "Prefix of every subject."},
		{"template_dir", "path", "", "Templates replacing the defaults by file name."},
		{"max_lines", "int", "10", "Log lines quoted per alert."},
		{"line_length", "int", "300", "Bytes kept of each quoted line."},
		{"digest_interval", "duration", "15m", "Alerts following a mail are gathered into one digest sent this long after it."},
		{"urgent_interval", "duration", "1m", "The same for urgent mails (suspensions, permanent bans)."},
		{"report_unbans", "bool", "false", "Alert unbans too."},
		{"report_manual", "bool", "true", "Alert manual bans."},
	}},
	{Name: "postfix", Intro: "The postfix target's access table.", Keys: []KeyDoc{
		{"table", "path", "/etc/postfix/mailjail/access", "The table's source file."},
		{"type", "hash|cidr", "hash", "hash: postmap builds TABLE.db, reread by smtpd itself; cidr needs a reload."},
		{"postmap", "program", "postmap", "The postmap program, for hash."},
		{"reload", "argv list", "postfix reload (cidr only)", "Run after a cidr table changed."},
		{"message", "string", "banned by mailjail", "Text after REJECT."},
	}},
	{Name: "nftables", Intro: "The nftables target: a table inet mailjail owns.", Keys: []KeyDoc{
		{"table", "name", "mailjail", "The inet table's name."},
		{"ports", "list of ints", "[25, 465, 587]", "TCP ports whose packets from banned clients are dropped."},
		{"priority", "int", "-10", "Priority of the input chain."},
	}},
	{Name: "redis", Intro: "The connection of the rspamd-redis target.", Keys: []KeyDoc{
		{"address", "host:port", "127.0.0.1:6379", "A standalone server."},
		{"sentinels", "list of host:port", "", "Sentinels, with master_name."},
		{"master_name", "string", "", "The Sentinel master."},
		{"username", "string", "", "ACL user."},
		{"password", "string", "", "Password."},
		{"password_file", "path", "", "Password read at start, trailing newline dropped."},
		{"db", "int", "0", "Database number."},
		{"tls", "bool", "false", "TLS to Redis."},
		{"ca_file", "path", "the system's roots", "PEM roots."},
		{"key_prefix", "string", "mailjail_", "Prepended to every key mailjail writes."},
		{"timeout", "duration", "2s", "Dial, read and write."},
	}},
	{Name: "rspamd_redis", Intro: "The hashes rspamd's multimap reads as redis://KEY_PREFIX+NAME.", Keys: []KeyDoc{
		{"bans", "string", "bans", "Hash of banned addresses and prefixes."},
		{"accounts", "string", "accounts", "Hash of suspended logins."},
		{"owner", "string", "the host name", "Marks the fields this host writes, so that hosts sharing a hash remove only their own."},
	}},
	{Name: "webhook.NAME", Intro: "A webhook jails name in webhooks.", Keys: []KeyDoc{
		{"url", "URL", "", "Where events are POSTed (JSON)."},
		{"timeout", "duration", "10s", "Per request (at most 1h)."},
		{"events", "list of ban|unban|suspend|release", "all", "The events sent."},
		{"bearer_token_file", "path", "", "Authorization: Bearer token, read at start."},
		{"hmac_secret_file", "path", "", "Secret of the X-Mailjail-Signature HMAC, read at start."},
		{"ca_file", "path", "the system's roots", "PEM roots for https."},
	}},
}
