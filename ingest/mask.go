package ingest

import "bytes"

// Masking works on raw bytes, not parsed JSON, because the messages that
// need it most are the ones that failed to parse.

const maskByte = '*'

// carriesSensitiveKey reports whether data names a card-data field or has a
// card_bin longer than 8 digits, whether or not data is valid JSON.
func carriesSensitiveKey(data []byte) bool {
	found := false
	forEachSensitiveValue(data, func(key string, start, end int) {
		found = true
	})
	return found
}

// Mask returns a copy of a message with card data overwritten: the values of
// pan, card_number, track1, track2, cvv, cvv2, pin and pin_block; a card_bin
// beyond its first 6 digits when it is longer than 8; and any run of 12 or
// more digits elsewhere (a PAN pasted into another field). Length and
// structure are kept so the copy still shows what was wrong with it.
func Mask(data []byte) []byte {
	out := bytes.Clone(data)
	forEachSensitiveValue(out, func(key string, start, end int) {
		if key == "card_bin" {
			start += 6
		}
		for i := start; i < end; i++ {
			out[i] = maskByte
		}
	})
	run := 0
	for i := 0; i <= len(out); i++ {
		if i < len(out) && out[i] >= '0' && out[i] <= '9' {
			run++
			continue
		}
		if run >= 12 {
			for j := i - run; j < i; j++ {
				out[j] = maskByte
			}
		}
		run = 0
	}
	return out
}

// forEachSensitiveValue calls fn with the byte range of the value of every
// sensitive key in data ("key" followed by ':' and a value). For string
// values the range is the content between the quotes; for anything else it
// runs to the next ',', '}' or end of input.
func forEachSensitiveValue(data []byte, fn func(key string, start, end int)) {
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		j := bytes.IndexByte(data[i+1:], '"')
		if j < 0 {
			return
		}
		key := data[i+1 : i+1+j]
		next := i + 1 + j // closing quote of the key candidate
		name := sensitiveName(key)
		isBIN := string(key) == "card_bin"
		if name == "" && !isBIN {
			continue
		}
		k := next + 1
		for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r') {
			k++
		}
		if k >= len(data) || data[k] != ':' {
			continue
		}
		k++
		for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r') {
			k++
		}
		start, end := k, k
		if k < len(data) && data[k] == '"' {
			start = k + 1
			end = start
			for end < len(data) && data[end] != '"' {
				if data[end] == '\\' {
					end++
				}
				end++
			}
			if end > len(data) {
				end = len(data)
			}
		} else {
			for end < len(data) && data[end] != ',' && data[end] != '}' {
				end++
			}
		}
		if isBIN {
			if end-start <= 8 || !isDigits(data[start:end]) {
				i = end
				continue
			}
			name = "card_bin"
		}
		fn(name, start, end)
		i = end
	}
}
