// Package e2e holds mailjail's end-to-end tests. They run the real peers on
// loopback: Postfix takes mail from swaks (posing as any client address with
// XCLIENT) and hands it to rspamd over the milter protocol; rspamd rate-limits
// clients (buckets in redis), logs `Ratelimit "ip" exceeded` and rejects
// addresses listed in the multimap `ip` map that mailjail rewrites.
//
// The tests skip unless MAILJAIL_E2E is set. e2e/setup.sh installs and starts
// the peers (as root); see e2e/README.md.
package e2e
