package rules

import "time"

// MarkActive records that k has an active ban until until (zero: no
// end), restored from the database after a restart: further strikes are
// ignored while it lasts. Unlike MarkBanned it adds nothing to the
// escalation history, which is restored from the ban history itself.
func (p *Policy[K]) MarkActive(k K, until time.Time) {
	delete(p.strikes, k)
	var u int64
	if !until.IsZero() {
		u = until.UnixNano()
	}
	p.banned[k] = u
}
