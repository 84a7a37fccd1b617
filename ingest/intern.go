package ingest

// Interner deduplicates the strings that repeat across events (terminal,
// merchant, region ids, codes) so decoding them costs no allocation once
// seen. It is bounded: when full it starts over, trading a burst of
// allocations for a hard memory ceiling. Not safe for concurrent use.
type Interner struct {
	m   map[string]string
	max int
}

// NewInterner returns an interner holding at most max strings.
func NewInterner(max int) *Interner {
	if max <= 0 {
		max = 1 << 20
	}
	return &Interner{m: make(map[string]string, 1024), max: max}
}

// Bytes returns a string equal to b, shared with earlier calls.
func (in *Interner) Bytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := in.m[string(b)]; ok { // no allocation: compiler optimises the lookup
		return s
	}
	if len(in.m) >= in.max {
		clear(in.m)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// Len reports how many strings are held.
func (in *Interner) Len() int { return len(in.m) }
