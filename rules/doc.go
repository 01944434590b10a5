// Package rules is mailjail's pure core: it turns log lines and a clock into
// decisions. It holds the filters that recognise events (with fail2ban's
// <HOST> placeholder, and <USER> for the authenticated account an event
// names, so that a compromised account can be struck even when its client
// address is a shared gateway), the built-in filters for rspamd and Postfix
// ratelimit events, address and account normalisation and ignoreip sets,
// log timestamp parsing, and the strike/ban policy (maxretry within
// findtime, escalating bantime).
//
// Nothing here touches files, sockets or SQLite, so every rule can be tested
// with a fake clock and hostile input and no sleeping.
package rules
