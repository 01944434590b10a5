package cluster

import "time"

// Plan compares this node's state with the shared one, field by field,
// and says what a resync does: publish the local records that are newer
// than the shared ones (or absent from them), apply the shared records
// that are newer than the local ones. A ban that has ended is neither
// published nor applied: an expired ban is never revived. Only one
// record of each field counts on each side, the newest.
func Plan(local, shared []Record, now time.Time) (publish, apply []Record) {
	l, r := newest(local), newest(shared)
	for f, lr := range l {
		rr, ok := r[f]
		switch {
		case !ok:
			// Made while Redis was out of reach, or by the CLI without
			// a daemon: share it. A lift of a ban nobody shares says
			// nothing.
			if lr.Active(now) {
				publish = append(publish, lr)
			}
		case lr.Newer(rr):
			if lr.Active(now) || lr.Lifted != 0 {
				publish = append(publish, lr)
			}
		case rr.Newer(lr):
			if rr.Active(now) || rr.Lifted != 0 && lr.Active(now) {
				apply = append(apply, rr)
			}
		}
	}
	for f, rr := range r {
		if _, ok := l[f]; !ok && rr.Active(now) {
			apply = append(apply, rr)
		}
	}
	return publish, apply
}

func newest(recs []Record) map[string]Record {
	out := make(map[string]Record, len(recs))
	for _, rec := range recs {
		if cur, ok := out[rec.Field()]; !ok || rec.Newer(cur) {
			out[rec.Field()] = rec
		}
	}
	return out
}
