package alerting

// onset estimates when the current anomaly of counter c in s began, as a
// change point over the buckets of sp: the bucket start from which the
// excess of failures over threshold, summed up to now, is largest. Quiet
// buckets before the onset subtract from the sum, so an isolated noisy
// bucket earlier in the window does not pull the onset back, and one
// approved attempt inside the anomaly does not push it forward.
func (e *Engine) onset(s *scope, c int, threshold float64, sp span) int64 {
	bySlot := make(map[int32]*bucket, len(s.ring))
	for i := range s.ring {
		if b := &s.ring[i]; sp.hasSlot(b.slot) && b.n > 0 {
			bySlot[b.slot] = b
		}
	}
	best, bestSum, sum := sp.toSlot-1, 0.0, 0.0
	for slot := sp.toSlot - 1; slot >= sp.fromSlot; slot-- {
		b, ok := bySlot[slot]
		if !ok {
			continue
		}
		sum += float64(b.f[c]) - threshold*float64(b.n)
		if sum > bestSum {
			best, bestSum = slot, sum
		}
	}
	return slotEpoch + int64(best)*e.width[s.typ]
}

// firstFailureSince refines a bucket-resolution onset to the first failure
// of s in sp at or after it; it returns at when there is none.
func firstFailureSince(recs []record, s *scope, sp span, at int64) int64 {
	first, found := at, false
	for i := range recs {
		if rec := &recs[i]; rec.dims[s.typ] == s && sp.has(rec.ts) && rec.ts >= at && (!found || rec.ts < first) {
			first, found = rec.ts, true
		}
	}
	return first
}
